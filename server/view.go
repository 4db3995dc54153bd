package server

import (
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// The API's bodies are the wire types of package api; these short names
// keep the handlers readable.
func ts(t time.Time) string { return api.Time(t) }

func tsPtr(t *time.Time) *string { return api.TimePtr(t) }

// viewOf renders a task; withResult adds the result (detail view only).
func viewOf(t store.Task, withResult bool) api.Task { return api.TaskOf(t, withResult) }

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
}
