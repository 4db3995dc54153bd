package store

import (
	"context"
	"time"

	"github.com/terratask/terratask/task"
)

// Plan is a task's saved plan as reviewers read it: Terraform's structured
// plan reduced to what a review needs (JSON of api.Plan) and Terraform's
// human-readable rendering of it, every sensitive value masked in both. A
// task has one plan, the latest it made.
type Plan struct {
	TaskID  string
	Org     string
	Summary task.PlanSummary
	// JSON is the api.Plan document the plan route serves.
	JSON []byte
	// Text is `terraform show` of the plan, masked.
	Text string
	// Digest is the hex SHA-256 of the binary plan file that was shown.
	Digest string
	// PolicyInput is Terraform's whole JSON plan (`terraform show -json`),
	// every sensitive value masked, sealed with the org's key: the input of
	// the task's post_plan policy check. Nil when the task's org had no
	// policies. GetPlan leaves it out; GetPlanPolicyInput reads it.
	PolicyInput []byte
	// CreatedAt is assigned by the store.
	CreatedAt time.Time
}

// PlanFile is a task's binary plan file, sealed with the secret key (it
// holds variable values and the prior state): what an approved task
// applies, on whichever host of its runner applies it. It is kept while
// the task may still apply it.
type PlanFile struct {
	TaskID string
	Org    string
	// Digest is the hex SHA-256 of the plan file before sealing.
	Digest string
	// Data is the sealed plan file; the store keeps it as given.
	Data []byte
	// CreatedAt is assigned by the store.
	CreatedAt time.Time
}

// PlanStore keeps tasks' saved plans: what reviewers read, written by the
// runner that planned, and the sealed plan files that approved tasks apply.
type PlanStore interface {
	// PutPlan stores p as its task's plan, replacing an earlier one.
	PutPlan(ctx context.Context, p Plan) error
	// GetPlan returns the plan of task id of org, or ErrNotFound (also for
	// a task of another org).
	GetPlan(ctx context.Context, org, id string) (Plan, error)
	// GetPlanPolicyInput returns the plan of task id of org with its
	// PolicyInput (nil when it has none), or ErrNotFound.
	GetPlanPolicyInput(ctx context.Context, org, id string) (Plan, error)
	// PutPlanFile stores f as its task's plan file, replacing an earlier one.
	PutPlanFile(ctx context.Context, f PlanFile) error
	// GetPlanFile returns the plan file of task id of org, with Data, or
	// ErrNotFound.
	GetPlanFile(ctx context.Context, org, id string) (PlanFile, error)
	// DeletePlanFile removes the plan file of task id; removing none
	// succeeds.
	DeletePlanFile(ctx context.Context, id string) error
}
