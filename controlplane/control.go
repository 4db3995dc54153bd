// Package controlplane holds the Temporal activities of the control plane,
// which run on its worker next to the task workflow: Record projects a
// transition into the store and hands its event to the delivery workflows,
// Emit stores an event outside a transition, drift's completed check starts
// its remediation task (package taskstart), and the Deliverer makes one
// webhook or notify delivery attempt. The runner hosts' activities are
// package activities; the activity names here are Temporal's, kept as they
// were when both lived there.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/secret/master"
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
	// Notify is the task's own callback, if it has one: its events go there
	// too.
	Notify *task.Notify `json:"notify,omitempty"`
	// Remediation is the apply task a drifted plan starts, on the task's
	// completed transition (see drift.go).
	Remediation *task.Input `json:"remediation,omitempty"`
	// Then are transitions that followed this one at once, recorded in
	// order by the same local activity.
	Then []Record `json:"then,omitempty"`
}

// Names of the other control-plane (local) activities.
const (
	NameAcquireWorkspace = "terratask.AcquireWorkspace"
	NameTaskOpen         = "terratask.TaskOpen"
	// NameEmit stores and delivers an event outside a transition
	// (EmitInput; returns the event ID). Run it as a local activity.
	NameEmit = "terratask.Emit"
)

// Control holds the control-plane activities. They run on the control-plane
// worker, next to the workflow, as local activities.
type Control struct {
	Store    store.Store
	Temporal client.Client
	// Secrets opens what runners sealed with their org's key (the plan
	// JSON of a post_plan policy check, sensitive variables' names).
	Secrets *master.Box
	// Policies caches compiled policy sets (nil: a process-wide cache).
	Policies *policy.Cache
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

// Record writes a transition, its log lines and its event in one store
// transaction, then hands the event to the delivery workflows of its
// targets. It is idempotent: replays and retries insert nothing twice, never
// move a task backwards, and signal each delivery workflow with an event it
// has already queued (and ignores).
func (c *Control) Record(ctx context.Context, r Record) error {
	if err := c.record(ctx, r); err != nil {
		return err
	}
	for _, next := range r.Then {
		if err := c.record(ctx, next); err != nil {
			return err
		}
	}
	return nil
}

// record writes one transition (see Record).
func (c *Control) record(ctx context.Context, r Record) error {
	rec := store.TransitionRecord{Task: r.Task, Transition: r.Transition, Logs: r.Logs}
	if r.Event != "" {
		ev, err := events.New(events.TransitionID(r.Task.ID, r.seq()), r.Event,
			events.TaskAt(r.Task, r.Transition), r.Transition.UpdatedAt)
		if err != nil {
			return err
		}
		rec.Event = &ev
	}
	hooks, err := c.Store.RecordTransition(ctx, rec)
	if err != nil {
		return fmt.Errorf("recording transition: %w", err)
	}
	observeRecord(r)
	if r.Transition.Status.Terminal() {
		// An ended task applies nothing more: its sealed plan file (variable
		// values, prior state) goes; the plan for review stays.
		if err := c.Store.DeletePlanFile(ctx, r.Transition.ID); err != nil {
			return fmt.Errorf("removing the task's plan file: %w", err)
		}
	}
	if rec.Event != nil {
		if err := c.dispatch(ctx, *rec.Event, hooks, r.Notify); err != nil {
			return err
		}
	}
	return c.afterDrift(ctx, r)
}

// seq is the transition's number: the Seq of its line in the workflow's
// own log stream ("task"), which the workflow counts deterministically.
func (r Record) seq() int64 {
	for _, l := range r.Logs {
		if l.Stream == "task" {
			return l.Seq
		}
	}
	return r.Transition.UpdatedAt.UnixNano()
}

// dispatch queues an event on the delivery workflow of each of its
// targets, starting the workflow when it is not running. The workflow
// ignores an event it has queued before, so a retried dispatch is harmless.
func (c *Control) dispatch(ctx context.Context, ev store.Event, hooks []store.Webhook, notify *task.Notify) error {
	if c.Temporal == nil {
		return nil
	}
	for _, t := range events.Targets(ev, hooks, notify) {
		in := events.WorkflowInput{Org: ev.Org, TaskID: ev.TaskID, Target: t.ID, URL: t.URL}
		id := events.WorkflowID(ev.TaskID, t.ID)
		_, err := c.Temporal.SignalWithStartWorkflow(ctx, id, events.SignalEvent,
			events.Pending{EventID: ev.ID, Type: ev.Type},
			client.StartWorkflowOptions{ID: id, TaskQueue: task.ControlPlaneTaskQueue}, events.WorkflowType, in)
		if err != nil {
			return fmt.Errorf("queueing event %s for delivery: %w", ev.ID, err)
		}
	}
	return nil
}

// EmitInput asks for an event outside a transition (drift.detected): of a
// task, once per (task, type, key).
type EmitInput struct {
	Org    string         `json:"org"`
	TaskID string         `json:"task_id"`
	Type   task.EventType `json:"type"`
	// Key distinguishes several events of one type of one task ("" for
	// one).
	Key string `json:"key,omitempty"`
	// Notify is the task's own callback, if it has one.
	Notify *task.Notify `json:"notify,omitempty"`
}

// Emit stores an event about a task as the store has it now (with its
// result once it ended) and hands it to its targets, as Record does for a
// transition's event. It returns the event's ID. It is idempotent.
func (c *Control) Emit(ctx context.Context, in EmitInput) (string, error) {
	if !in.Type.Valid() {
		return "", temporal.NewNonRetryableApplicationError("unknown event type "+string(in.Type), "bad_event", nil)
	}
	t, err := c.Store.GetTask(ctx, in.Org, in.TaskID)
	if err != nil {
		return "", fmt.Errorf("reading task %s for its %s event: %w", in.TaskID, in.Type, err)
	}
	ev, err := events.New(events.EmitID(in.TaskID, in.Type, in.Key), in.Type, t, time.Now())
	if err != nil {
		return "", err
	}
	hooks, err := c.Store.AppendEvent(ctx, ev)
	if err != nil {
		return "", fmt.Errorf("storing event: %w", err)
	}
	return ev.ID, c.dispatch(ctx, ev, hooks, in.Notify)
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
		ScheduleID:  in.ScheduleID,
	}
}
