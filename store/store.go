// Package store defines terratask's heartbeat-fed store: task log entries,
// written in batches by runners on each heartbeat tick and at step end, the
// task index that list, filter, sort and paging are served from, the
// Terraform state (versions and lock per org and workspace) that the server's
// HTTP state backend serves (StateStore), the workspaces and the agents that
// may use them (WorkspaceStore), tasks' saved plans (PlanStore), the
// orgs' policies and every version of each (PolicyStore), the orgs'
// credential sets, their values sealed (CredentialSetStore), and the events,
// webhooks and webhook delivery log of package events (EventStore).
//
// Temporal stays the source of truth; the store is a projection. The SQLite
// implementation (package store/sqlite) is the embedded default; a PostgreSQL
// implementation follows the same interface and the same shared test suite
// (package store/storetest).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/terratask/terratask/task"
)

// ErrNotFound is returned when a task does not exist (or belongs to another org).
var ErrNotFound = errors.New("not found")

// Task is a row of the task index.
type Task struct {
	ID          string
	Org         string
	Name        string
	Description string
	AgentID     string
	RunnerID    string
	Status      task.Status
	Progress    int
	Metadata    map[string]any
	// Step fields mirror the status endpoint's metadata.
	CurrentStep    task.Step
	StepsCompleted int
	TotalSteps     int
	Result         *task.Result
	CreatedAt      time.Time
	UpdatedAt      time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	CancelledAt    *time.Time
	CancelledBy    string
	// Approval is the review of the task's plan (nil: none yet), and Plan
	// the counts of its latest plan (nil: it has not planned).
	Approval *task.ApprovalState
	Plan     *task.PlanSummary
	// Policy is the task's latest policy check (nil: none).
	Policy *task.PolicyCheck
	// ScheduleID names the schedule that started the task ("" for none).
	ScheduleID string
}

// Transition is a change of a task's state recorded by the task workflow. A
// transition never moves UpdatedAt or Progress backwards: an older transition
// arriving late (a retried activity) is ignored.
type Transition struct {
	ID             string
	Status         task.Status
	Progress       int
	CurrentStep    task.Step
	StepsCompleted int
	TotalSteps     int
	Result         *task.Result
	UpdatedAt      time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	CancelledAt    *time.Time
	CancelledBy    string
	// Approval, Plan and Policy replace the stored ones when not nil.
	Approval *task.ApprovalState
	Plan     *task.PlanSummary
	Policy   *task.PolicyCheck
}

// SortField is a column lists may be sorted by.
type SortField string

// Sort fields.
const (
	SortCreatedAt SortField = "created_at"
	SortUpdatedAt SortField = "updated_at"
	SortStatus    SortField = "status"
)

// TaskQuery selects a page of the task index. Org is always applied; empty
// filters match everything. Results are ordered by Sort then by ID, so pages
// never repeat or skip a task.
type TaskQuery struct {
	Org        string
	Status     []task.Status
	AgentID    string
	RunnerID   string
	ScheduleID string
	Sort       SortField // default SortCreatedAt
	Descending bool
	Limit      int // required, > 0
	Offset     int
}

// RunnerStat is the number of an org's tasks of one runner in one status.
type RunnerStat struct {
	RunnerID string
	Status   task.Status
	Tasks    int
}

// LogEntry is one log line of a task. (TaskID, Stream, Seq) identifies it:
// appending the same entry twice stores it once, so a retried flush never
// duplicates lines. A stream is one producer's sequence, for example one
// attempt of one step ("run1/applying/attempt2") or the workflow ("task").
type LogEntry struct {
	TaskID string
	Stream string
	Seq    int64 // position within (TaskID, Stream), from 1
	// ID is assigned by the store in insertion order; read-only.
	ID        int64
	Timestamp time.Time
	Level     task.Level
	Message   string
	// Metadata carries component, step, attempt and resource address.
	Metadata map[string]any
	// MetadataJSON is Metadata as stored (a JSON object; nil when there is
	// none), filled by ListLogs instead of Metadata when the query asks for
	// RawMetadata: a reader that only passes it on skips a decode and an
	// encode per entry.
	MetadataJSON json.RawMessage
}

// LogQuery selects a task's log entries, oldest first. Since and Until filter on
// Timestamp; AfterID is the paging cursor.
type LogQuery struct {
	TaskID  string
	Since   *time.Time   // inclusive
	Until   *time.Time   // inclusive
	Levels  []task.Level // empty: all
	AfterID int64        // cursor: only entries with ID > AfterID
	Limit   int          // required, > 0
	// RawMetadata fills LogEntry.MetadataJSON instead of Metadata.
	RawMetadata bool
}

// Store is the heartbeat-fed store.
type Store interface {
	// CreateTask inserts a task into the index. Inserting an ID that exists
	// is a no-op returning nil, so the create path may be retried.
	CreateTask(ctx context.Context, t Task) error
	// ApplyTransition updates a task's state. Fields of a transition older
	// than the row (UpdatedAt before the stored one) are ignored; Progress
	// never decreases.
	ApplyTransition(ctx context.Context, tr Transition) error
	// GetTask returns a task of org, or ErrNotFound.
	GetTask(ctx context.Context, org, id string) (Task, error)
	// ListTasks returns a page and the total number of matching tasks.
	ListTasks(ctx context.Context, q TaskQuery) ([]Task, int, error)
	// AppendLogs stores entries idempotently (see LogEntry).
	AppendLogs(ctx context.Context, entries []LogEntry) error
	// ListLogs returns entries oldest first, in insertion (ID) order: a task's
	// steps run one after another, so insertion order is time order.
	ListLogs(ctx context.Context, q LogQuery) ([]LogEntry, error)
	// RunnerStats counts the org's tasks per runner and status, for the
	// runners routes (which runners exist, and what waits for them).
	RunnerStats(ctx context.Context, org string) ([]RunnerStat, error)
	// StateStore keeps the Terraform state the server's HTTP backend serves.
	StateStore
	// TaskCounter counts tasks over every org, for metrics.
	TaskCounter
	// EventStore keeps events, webhooks and deliveries, and tells
	// followers of logs and events about new ones.
	EventStore
	// PlanStore keeps tasks' saved plans for review and apply.
	PlanStore
	// RunnerHostStore keeps what runner hosts offer (engines).
	RunnerHostStore
	// ScheduleStore keeps the schedule index.
	ScheduleStore
	// WorkspaceStore keeps the workspaces and the agents that may use
	// them.
	WorkspaceStore
	// PolicyStore keeps the orgs' policies and their versions.
	PolicyStore
	// CredentialSetStore keeps the orgs' credential sets.
	CredentialSetStore
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}
