// Package api holds the wire types of terratask's HTTP API: the JSON bodies
// the server writes and the clients (package client, the CLI, the MCP server)
// and webhook receivers read. One type per body, defined once, so the server,
// the clients and the event payloads cannot drift apart.
//
// The package is a leaf: it imports nothing of terratask but task, whose
// statuses, steps and event types it shows. The server renders store rows
// into these types (server/view.go, events.TaskObject).
package api

import (
	"encoding/json"
	"time"

	"github.com/terratask/terratask/task"
)

// Task is the seed's Task Object, plus cancelled_at / cancelled_by once a
// task is cancelled, and approved_by / approved_at or rejected_by /
// rejected_at (with approval_comment) once a person decided on its plan.
// Result is set in the detail view only.
type Task struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Status      task.Status    `json:"status"`
	Progress    int            `json:"progress"`
	CreatedAt   string         `json:"created_at"`
	UpdatedAt   string         `json:"updated_at"`
	StartedAt   *string        `json:"started_at"`
	CompletedAt *string        `json:"completed_at"`
	AgentID     string         `json:"agent_id"`
	RunnerID    string         `json:"runner_id"`
	Metadata    map[string]any `json:"metadata"`
	Result      *task.Result   `json:"result,omitempty"`
	CancelledAt *string        `json:"cancelled_at,omitempty"`
	CancelledBy string         `json:"cancelled_by,omitempty"`
	// The decision on the task's plan (approval other than none).
	ApprovedBy      string  `json:"approved_by,omitempty"`
	ApprovedAt      *string `json:"approved_at,omitempty"`
	RejectedBy      string  `json:"rejected_by,omitempty"`
	RejectedAt      *string `json:"rejected_at,omitempty"`
	ApprovalComment string  `json:"approval_comment,omitempty"`
	// Policy is the task's latest policy check: its decision (allow,
	// require_approval, deny, error), stage, and each rule's message with
	// its policy and version. Absent when the org has no policies.
	Policy *task.PolicyCheck `json:"policy,omitempty"`
}

// TaskSummary is an entry of the agent and runner lists: the seed shows
// these six fields there.
type TaskSummary struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Status    task.Status `json:"status"`
	Progress  int         `json:"progress"`
	CreatedAt string      `json:"created_at"`
	UpdatedAt string      `json:"updated_at"`
}

// Status is the body of GET /tasks/{id}/status.
type Status struct {
	ID        string         `json:"id"`
	Status    task.Status    `json:"status"`
	Progress  int            `json:"progress"`
	StartedAt *string        `json:"started_at"`
	UpdatedAt string         `json:"updated_at"`
	Metadata  map[string]any `json:"metadata"`
}

// LogEntry is one entry of GET /tasks/{id}/logs.
type LogEntry struct {
	Timestamp string          `json:"timestamp"`
	Level     task.Level      `json:"level"`
	Message   string          `json:"message"`
	Metadata  json.RawMessage `json:"metadata"`
}

// Logs is the body of GET /tasks/{id}/logs.
type Logs struct {
	TaskID string     `json:"task_id"`
	Logs   []LogEntry `json:"logs"`
}

// Cancel is the body of PUT /tasks/{id}/cancel.
type Cancel struct {
	ID          string      `json:"id"`
	Status      task.Status `json:"status"`
	CancelledAt *string     `json:"cancelled_at"`
	CancelledBy string      `json:"cancelled_by"`
}

// Runner is a runner's liveness, read from the pollers Temporal sees on the
// runner's task queue, and the org's tasks that are on it.
type Runner struct {
	ID       string         `json:"id"`
	Status   string         `json:"status"` // online or offline
	LastSeen *string        `json:"last_seen"`
	Workers  int            `json:"workers"`
	Hosts    []RunnerHost   `json:"hosts"`
	Tasks    map[string]int `json:"tasks"` // by status, this org's tasks
	// Engines is what the runner's live hosts offer together: every
	// version any of them runs, per engine (see task.EngineInfo).
	Engines []task.EngineInfo `json:"engines"`
}

// RunnerHost is one process polling a runner's queue.
type RunnerHost struct {
	Identity string `json:"identity"`
	LastSeen string `json:"last_seen"`
	// Engines is what this host published it offers (empty for a host
	// that publishes nothing).
	Engines []task.EngineInfo `json:"engines"`
}

// ErrorBody is the seed's error response: {"error": {...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is the seed's error object. Code is one of the snake_case codes the
// server documents (bad_request, not_found, conflict, ...).
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// Time renders a timestamp as the API does: RFC 3339, UTC, seconds.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// TimePtr renders an optional timestamp; nil stays nil (JSON null).
func TimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := Time(*t)
	return &s
}

// LogTime renders a log entry's timestamp, with milliseconds: entries of one
// second must keep their order for readers that sort by time.
func LogTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// CreateTask is the body of POST /tasks: the seed's create request.
// Parameters holds the task parameters (module, files, variables, ...);
// any key that is not a reserved parameter is an input variable.
type CreateTask struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	AgentID     string         `json:"agent_id"`
	RunnerID    string         `json:"runner_id"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	Parameters  map[string]any `json:"parameters,omitempty"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status string `json:"status"`
}

// Ready is the body of GET /readyz: ok, or unavailable with the failing
// checks (store, temporal).
type Ready struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// StateVersion is a stored version of a workspace's Terraform state: its
// metadata, never the document.
type StateVersion struct {
	Version   int64     `json:"version"`
	Serial    int64     `json:"serial"`
	Lineage   string    `json:"lineage"`
	MD5       string    `json:"md5"`
	Size      int64     `json:"size"`
	TaskID    string    `json:"task_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// StateLock is a workspace's state lock (Locked false: none held). Info is
// Terraform's lock info as it was sent.
type StateLock struct {
	Locked    bool            `json:"locked"`
	ID        string          `json:"id,omitempty"`
	TaskID    string          `json:"task_id,omitempty"`
	CreatedAt *time.Time      `json:"created_at,omitempty"`
	Info      json.RawMessage `json:"info,omitempty"`
}

// Schedule is a schedule as GET /api/v1/schedules and /schedules/{id} show
// it. Cron or Interval is set, the other null. Template is the create body
// of the tasks it starts, with the values of sensitive_variables and env
// replaced by "(sensitive)". The live fields (Note, NextRuns, RecentRuns,
// Running) come from Temporal and are in the detail view only; Drifted and
// DriftTaskID, for a drift schedule, from its latest completed task.
type Schedule struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Kind      string          `json:"kind"`
	Cron      *string         `json:"cron"`
	Interval  *string         `json:"interval"`
	TimeZone  string          `json:"time_zone"`
	Jitter    string          `json:"jitter"`
	Paused    bool            `json:"paused"`
	Overlap   string          `json:"overlap"`
	Template  json.RawMessage `json:"template"`
	CreatedAt string          `json:"created_at"`
	UpdatedAt string          `json:"updated_at"`
	CreatedBy string          `json:"created_by"`

	Note       string        `json:"note,omitempty"`
	NextRuns   []string      `json:"next_runs,omitempty"`
	RecentRuns []ScheduleRun `json:"recent_runs,omitempty"`
	Running    []string      `json:"running,omitempty"`

	Drifted     *bool  `json:"drifted,omitempty"`
	DriftTaskID string `json:"drift_task_id,omitempty"`
}

// ScheduleRun is one task a schedule started.
type ScheduleRun struct {
	TaskID      string      `json:"task_id"`
	ScheduledAt string      `json:"scheduled_at"`
	StartedAt   string      `json:"started_at"`
	Status      task.Status `json:"status,omitempty"`
}

// NewSchedule is the body of POST /schedules: a cron expression or an
// interval (a duration such as "24h"), and the create body of the tasks it
// starts.
type NewSchedule struct {
	Name     string     `json:"name"`
	Cron     string     `json:"cron,omitempty"`
	Interval string     `json:"interval,omitempty"`
	TimeZone string     `json:"time_zone,omitempty"`
	Jitter   string     `json:"jitter,omitempty"`
	Paused   bool       `json:"paused,omitempty"`
	Overlap  string     `json:"overlap,omitempty"`
	Kind     string     `json:"kind,omitempty"`
	Template CreateTask `json:"template"`
}

// SchedulePatch is the body of PATCH /schedules/{id}: only the fields set
// change (Cron or Interval replaces the other; Template replaces the whole
// template).
type SchedulePatch struct {
	Name     *string     `json:"name,omitempty"`
	Cron     *string     `json:"cron,omitempty"`
	Interval *string     `json:"interval,omitempty"`
	TimeZone *string     `json:"time_zone,omitempty"`
	Jitter   *string     `json:"jitter,omitempty"`
	Paused   *bool       `json:"paused,omitempty"`
	Overlap  *string     `json:"overlap,omitempty"`
	Kind     *string     `json:"kind,omitempty"`
	Template *CreateTask `json:"template,omitempty"`
}
