// Package taskstart starts the task workflow. The API's creates, the
// schedules' runs and drift's remediations start a task alike: its ID is the
// workflow ID, taken once; it runs on the control plane's queue; it carries
// its search attributes from the start (status pending, agent, runner, org),
// and what the Temporal Web UI shows of it.
package taskstart

import (
	"context"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/task"
)

// SearchAttributes are the search attributes task in starts with; the
// workflow upserts them at each transition.
func SearchAttributes(in task.Input) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		temporal.NewSearchAttributeKeyKeyword(task.SearchAttrStatus).ValueSet(string(task.StatusPending)),
		temporal.NewSearchAttributeKeyKeyword(task.SearchAttrAgent).ValueSet(in.AgentID),
		temporal.NewSearchAttributeKeyKeyword(task.SearchAttrRunner).ValueSet(in.RunnerID),
		temporal.NewSearchAttributeKeyKeyword(task.SearchAttrOrg).ValueSet(in.Org),
	)
}

// Options are the options that start task in: its ID as the workflow ID,
// which no other run may take (a taken ID is an error, not the other run
// handed back), the control plane's queue and its search attributes.
func Options(in task.Input) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       in.ID,
		TaskQueue:                                task.ControlPlaneTaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    SearchAttributes(in),
	}
}

// Start starts the task workflow with in under opts (Options, perhaps
// with more set).
func Start(ctx context.Context, c client.Client, opts client.StartWorkflowOptions, in task.Input) error {
	_, err := c.ExecuteWorkflow(ctx, opts, task.WorkflowType, in)
	return err
}

// ScheduleAction is what schedule actionID (its Temporal action ID) starts:
// the task workflow with in, whose ID is left empty (each run's workflow
// ID is the action ID and the run's time), with the search attributes and
// Web UI description of a task the API starts.
func ScheduleAction(actionID string, in task.Input) *client.ScheduleWorkflowAction {
	in.ID = ""
	// What the Web UI shows of each run: named after the action ID (each
	// run's ID adds its time).
	var ui client.StartWorkflowOptions
	shown := in
	shown.ID = actionID + "-<run time>"
	Describe(&ui, shown)
	return &client.ScheduleWorkflowAction{
		ID:                    actionID,
		Workflow:              task.WorkflowType,
		Args:                  []any{in},
		TaskQueue:             task.ControlPlaneTaskQueue,
		TypedSearchAttributes: SearchAttributes(in),
		StaticSummary:         ui.StaticSummary,
		StaticDetails:         ui.StaticDetails,
		Memo:                  ui.Memo,
	}
}
