package server

import (
	"encoding/json"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// The API's bodies are the wire types of package api; these short names
// keep the handlers readable.
func ts(t time.Time) string { return api.Time(t) }

func tsPtr(t *time.Time) *string { return api.TimePtr(t) }

// viewOf renders a task; withResult adds the result (detail view only).
func viewOf(t store.Task, withResult bool) api.Task { return events.TaskObject(t, withResult) }

// summaryOf renders a stored task as a list summary.
func summaryOf(t store.Task) api.TaskSummary {
	return api.TaskSummary{ID: t.ID, Name: t.Name, Status: t.Status, Progress: t.Progress, CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt)}
}

// stateVersionOf renders a stored state version's metadata.
func stateVersionOf(v store.StateVersion) api.StateVersion {
	return api.StateVersion{Version: v.Version, Serial: v.Serial, Lineage: v.Lineage, MD5: v.MD5, Size: v.Size, TaskID: v.TaskID, CreatedAt: v.CreatedAt}
}

// stateLockOf renders a held lock; the zero lock is "not locked".
func stateLockOf(l store.StateLock) api.StateLock {
	if l.ID == "" {
		return api.StateLock{}
	}
	v := api.StateLock{Locked: true, ID: l.ID, TaskID: l.TaskID, CreatedAt: &l.CreatedAt}
	if json.Valid(l.Info) {
		v.Info = l.Info
	}
	return v
}

// deliveryOf renders a stored delivery attempt.
func deliveryOf(d store.Delivery) api.Delivery {
	return api.Delivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, TaskID: d.TaskID, Attempt: d.Attempt,
		StatusCode: d.StatusCode, LatencyMS: float64(d.Latency.Microseconds()) / 1000, Succeeded: d.Succeeded,
		Error: d.Error, At: api.LogTime(d.At),
	}
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
	if st.Approval != nil {
		t.Approval = st.Approval
	}
	if st.Plan != nil {
		t.Plan = st.Plan
	}
	if st.Policy != nil {
		t.Policy = st.Policy
	}
}
