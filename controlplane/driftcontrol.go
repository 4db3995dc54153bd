package controlplane

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"

	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/taskstart"
)

// afterDrift acts on the completed transition of a drift check that found
// drift: it emits drift.detected and starts the remediation the workflow
// named (remediate "approval"). Both are idempotent, as Record must be.
func (c *Control) afterDrift(ctx context.Context, r Record) error {
	tr := r.Transition
	if tr.Status != task.StatusCompleted || tr.Result == nil || tr.Result.Drift == nil || !tr.Result.Drift.Drifted {
		return nil
	}
	if err := c.emitDriftDetected(ctx, r); err != nil {
		return err
	}
	if r.Remediation == nil {
		return nil
	}
	return c.startRemediation(ctx, *r.Remediation)
}

// emitDriftDetected emits the task's drift.detected event (package events:
// stored with the task as it ended, delivered to the org's webhooks that
// take it and to the task's notify).
func (c *Control) emitDriftDetected(ctx context.Context, r Record) error {
	_, err := c.Emit(ctx, EmitInput{Org: r.Task.Org, TaskID: r.Task.ID, Type: task.EventDriftDetected, Notify: r.Notify})
	return err
}

// startRemediation starts the remediation task's workflow and indexes it.
// A remediation already started (Record retried) is left as it is.
func (c *Control) startRemediation(ctx context.Context, in task.Input) error {
	if c.Temporal == nil {
		return errors.New("starting the remediation task: no Temporal client")
	}
	err := taskstart.Start(ctx, c.Temporal, taskstart.Options(in), in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("starting the remediation task %s: %w", in.ID, err)
	}
	// The workflow indexes it too; this makes it listable at once.
	if err := c.Store.CreateTask(ctx, TaskRow(in, len(in.Params.EffectiveAction().Steps()))); err != nil {
		return fmt.Errorf("indexing the remediation task %s: %w", in.ID, err)
	}
	return nil
}
