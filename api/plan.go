package api

import "github.com/terratask/terratask/task"

// SensitiveValue replaces every sensitive value in a plan, in both its
// structured and its text form, and sensitive outputs in a task's result.
const SensitiveValue = "(sensitive)"

// UnknownValue stands for a value Terraform knows only after apply.
const UnknownValue = "(known after apply)"

// Plan is the body of GET /tasks/{id}/plan: a task's saved plan, reduced
// from Terraform's JSON plan to what a review needs. Every sensitive value
// reads "(sensitive)", and the task's own secrets are masked ("***").
type Plan struct {
	TaskID           string `json:"task_id"`
	CreatedAt        string `json:"created_at"`
	TerraformVersion string `json:"terraform_version"`
	// Summary counts the changes; the task waits for approval or not on
	// these counts.
	Summary task.PlanSummary `json:"summary"`
	// ResourceChanges are the planned changes, no-ops and reads included.
	ResourceChanges []ResourceChange `json:"resource_changes"`
	// OutputChanges are the root module outputs' changes, by name.
	OutputChanges map[string]OutputChange `json:"output_changes"`
	// ResourceDrift are changes made outside Terraform since the last
	// apply, found by the plan's refresh.
	ResourceDrift []ResourceChange `json:"resource_drift"`
	// Policy is the task's latest policy check, which the plan route adds
	// to the stored plan (absent when the org has no policies).
	Policy *task.PolicyCheck `json:"policy,omitempty"`
}

// ResourceChange is one resource instance's change in a plan.
type ResourceChange struct {
	Address       string `json:"address"`
	ModuleAddress string `json:"module_address"`
	// Mode is managed or data.
	Mode         string `json:"mode"`
	Type         string `json:"type"`
	Name         string `json:"name"`
	Index        any    `json:"index,omitempty"`
	ProviderName string `json:"provider_name"`
	// Actions are Terraform's: ["create"], ["update"], ["delete"],
	// ["delete","create"] or ["create","delete"] (replace), ["read"],
	// ["no-op"], ["forget"].
	Actions []string `json:"actions"`
	// ActionReason says why, when Terraform tells (replace_because_tainted,
	// replace_by_request, replace_because_cannot_update...).
	ActionReason string `json:"action_reason,omitempty"`
	// Before and After are the object's attributes; values known only
	// after apply read "(known after apply)".
	Before any `json:"before"`
	After  any `json:"after"`
	// Importing is set when the plan imports the object.
	Importing bool `json:"importing,omitempty"`
}

// OutputChange is a root module output's change in a plan.
type OutputChange struct {
	Actions   []string `json:"actions"`
	Before    any      `json:"before"`
	After     any      `json:"after"`
	Sensitive bool     `json:"sensitive"`
}

// Decision is the optional body of PUT /tasks/{id}/approve and
// /tasks/{id}/reject.
type Decision struct {
	Comment string `json:"comment,omitempty"`
}
