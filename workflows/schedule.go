package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/task"
)

// scheduledInput completes the input of a task whose starter left its ID
// empty: a Temporal Schedule (see package schedules), whose runs get the
// workflow ID Temporal gives them, the action's ID and the run's time
// ("task-...-2026-01-02T03:04:05Z"). The task's ID is then the workflow's
// ID, and its creation time the workflow's start. It reads only the
// workflow's info, so it adds no command: histories of tasks with an ID
// replay unchanged.
func scheduledInput(ctx workflow.Context, in task.Input) task.Input {
	if in.ID != "" {
		return in
	}
	info := workflow.GetInfo(ctx)
	in.ID = info.WorkflowExecution.ID
	if in.CreatedAt.IsZero() {
		in.CreatedAt = info.WorkflowStartTime.UTC()
	}
	return in
}
