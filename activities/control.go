package activities

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// NameRecord is the control-plane activity that projects a task transition
// into the store.
const NameRecord = "terratask.Record"

// Record is one transition of a task as the workflow saw it, with the log
// lines that describe it.
type Record struct {
	// Task is the index row; it is inserted if missing, so a task started by
	// another Temporal application (as a child workflow) still shows up.
	Task       store.Task       `json:"task"`
	Transition store.Transition `json:"transition"`
	Logs       []store.LogEntry `json:"logs,omitempty"`
	// Event is the event this transition emits ("" for none): the task was
	// created, entered a status that has an event, or started a step.
	Event task.EventType `json:"event,omitempty"`
}

// Names of the other control-plane (local) activities.
const (
	NameAcquireWorkspace = "terratask.AcquireWorkspace"
	NameTaskOpen         = "terratask.TaskOpen"
)

// Control holds the control-plane activities. They run on the control-plane
// worker, next to the workflow, as local activities.
type Control struct {
	Store    store.Store
	Temporal client.Client
}

// AcquireWorkspace queues a task on its workspace: it signals the workspace's
// queue workflow, starting it when it is not running.
func (c *Control) AcquireWorkspace(ctx context.Context, queueID string, req task.WorkspaceRequest) error {
	_, err := c.Temporal.SignalWithStartWorkflow(ctx, queueID, task.SignalWorkspaceAcquire, req,
		client.StartWorkflowOptions{ID: queueID, TaskQueue: task.ControlPlaneTaskQueue},
		task.WorkspaceWorkflowType, struct{}{})
	if err != nil {
		return fmt.Errorf("queueing on workspace: %w", err)
	}
	return nil
}

// TaskOpen reports whether a task's workflow is still running.
func (c *Control) TaskOpen(ctx context.Context, taskID string) (bool, error) {
	d, err := c.Temporal.DescribeWorkflowExecution(ctx, taskID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Record writes a transition and its log lines. It is idempotent: replays and
// retries insert nothing twice and never move a task backwards.
func (c *Control) Record(ctx context.Context, r Record) error {
	if err := c.Store.CreateTask(ctx, r.Task); err != nil {
		return fmt.Errorf("indexing task: %w", err)
	}
	if err := c.Store.ApplyTransition(ctx, r.Transition); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("recording transition: %w", err)
	}
	if len(r.Logs) > 0 {
		if err := c.Store.AppendLogs(ctx, r.Logs); err != nil {
			return fmt.Errorf("writing task logs: %w", err)
		}
	}
	if r.Transition.Status.Terminal() {
		// An ended task applies nothing more: its sealed plan file (variable
		// values, prior state) goes; the plan for review stays.
		if err := c.Store.DeletePlanFile(ctx, r.Transition.ID); err != nil {
			return fmt.Errorf("removing the task's plan file: %w", err)
		}
	}
	return nil
}

// TaskRow builds the index row of a task from its workflow input.
func TaskRow(in task.Input, steps int) store.Task {
	return store.Task{
		ID:          in.ID,
		Org:         in.Org,
		Name:        in.Name,
		Description: in.Description,
		AgentID:     in.AgentID,
		RunnerID:    in.RunnerID,
		Status:      task.StatusPending,
		Metadata:    in.Metadata,
		TotalSteps:  steps,
		CreatedAt:   in.CreatedAt,
		UpdatedAt:   in.CreatedAt,
	}
}
