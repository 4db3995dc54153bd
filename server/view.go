package server

import (
	"encoding/json"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// taskView is the seed's Task Object, plus cancelled_at / cancelled_by once
// a task is cancelled.
type taskView struct {
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
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

// viewOf renders a task; withResult adds the result (detail view only).
func viewOf(t store.Task, withResult bool) taskView {
	v := taskView{
		ID: t.ID, Name: t.Name, Description: t.Description, Status: t.Status, Progress: t.Progress,
		CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt), StartedAt: tsPtr(t.StartedAt),
		CompletedAt: tsPtr(t.CompletedAt), AgentID: t.AgentID, RunnerID: t.RunnerID,
		Metadata: t.Metadata, CancelledAt: tsPtr(t.CancelledAt), CancelledBy: t.CancelledBy,
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	if withResult {
		v.Result = t.Result
		if v.Result == nil {
			v.Result = &task.Result{Output: map[string]any{}}
		}
		if v.Result.Output == nil {
			v.Result.Output = map[string]any{}
		}
	}
	return v
}

// summaryView is an entry of the agent and runner lists: the seed shows
// these six fields there.
type summaryView struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Status    task.Status `json:"status"`
	Progress  int         `json:"progress"`
	CreatedAt string      `json:"created_at"`
	UpdatedAt string      `json:"updated_at"`
}

func summaryOf(t store.Task) summaryView {
	return summaryView{ID: t.ID, Name: t.Name, Status: t.Status, Progress: t.Progress, CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt)}
}

// overlay applies a live workflow state to a stored task: the query is
// fresher than the projection while the workflow runs.
func overlay(t *store.Task, st task.State) {
	if st.UpdatedAt.Before(t.UpdatedAt) && !st.Status.Terminal() {
		return
	}
	if !t.Status.Terminal() || st.Status.Terminal() {
		t.Status = st.Status
	}
	if st.Progress > t.Progress {
		t.Progress = st.Progress
	}
	t.CurrentStep = st.CurrentStep
	t.StepsCompleted = st.StepsCompleted
	t.TotalSteps = st.TotalSteps
	if st.UpdatedAt.After(t.UpdatedAt) {
		t.UpdatedAt = st.UpdatedAt
	}
	if st.StartedAt != nil {
		t.StartedAt = st.StartedAt
	}
	if st.CompletedAt != nil {
		t.CompletedAt = st.CompletedAt
	}
	if st.CancelledAt != nil {
		t.CancelledAt = st.CancelledAt
		t.CancelledBy = st.CancelledBy
	}
	if st.Result != nil {
		t.Result = st.Result
	}
}

// statusView is the body of GET /tasks/{id}/status.
type statusView struct {
	ID        string         `json:"id"`
	Status    task.Status    `json:"status"`
	Progress  int            `json:"progress"`
	StartedAt *string        `json:"started_at"`
	UpdatedAt string         `json:"updated_at"`
	Metadata  map[string]any `json:"metadata"`
}

// logView is one entry of GET /tasks/{id}/logs.
type logView struct {
	Timestamp string          `json:"timestamp"`
	Level     store.Level     `json:"level"`
	Message   string          `json:"message"`
	Metadata  json.RawMessage `json:"metadata"`
}

type logsView struct {
	TaskID string    `json:"task_id"`
	Logs   []logView `json:"logs"`
}

// cancelView is the body of PUT /tasks/{id}/cancel.
type cancelView struct {
	ID          string      `json:"id"`
	Status      task.Status `json:"status"`
	CancelledAt *string     `json:"cancelled_at"`
	CancelledBy string      `json:"cancelled_by"`
}
