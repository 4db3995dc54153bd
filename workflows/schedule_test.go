package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/task"
)

// TestScheduledRunTakesTheWorkflowID runs a task as a Temporal Schedule
// starts one: no ID in the input, a workflow ID ending in the run's time.
func TestScheduledRunTakesTheWorkflowID(t *testing.T) {
	f := newFixture(t)
	f.happy()
	const id = "task-abc-2026-01-02T03:04:05Z"
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.env.SetStartTime(start)
	f.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})
	in := input(task.ActionPlan)
	in.ID, in.CreatedAt, in.ScheduleID = "", time.Time{}, "sched-abc"
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	require.NoError(t, f.env.GetWorkflowError())
	require.NotEmpty(t, f.rec.records)
	for _, rec := range f.rec.records {
		require.Equal(t, id, rec.Task.ID)
		require.Equal(t, id, rec.Transition.ID)
		require.Equal(t, "sched-abc", rec.Task.ScheduleID)
		require.True(t, rec.Task.CreatedAt.Equal(start), "created at %s, want %s", rec.Task.CreatedAt, start)
		require.Equal(t, id, rec.Logs[0].TaskID)
	}
	require.Equal(t, task.StatusCompleted, f.rec.last().Transition.Status)
}
