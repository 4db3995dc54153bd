// Package events is terratask's event model and its delivery: the events a
// task emits as it moves (task.created, task.running, task.step,
// task.waiting_approval, task.completed, task.failed, task.cancelled,
// task.rejected) and drift.detected, the hub that wakes the followers of
// server-sent event streams (of a task's logs, or of an org's events), the
// SSE wire format, webhook signatures (Sign, Verify) and the HTTP sender
// that delivers an event to a webhook or a task's notify URL.
//
// An event is {id, type, occurred_at, task}: task is the Task Object at the
// moment of the transition (never a secret; with its result once the task
// ended). The task workflow's Record activity stores each event in the
// same transaction as its transition (store.EventStore), with an ID derived
// from the task and the transition, so a retried record stores nothing
// twice; the control plane then hands it to a delivery workflow per task
// and target (see Workflow), which delivers a task's events to a target
// one after another, each retried with backoff for 24 hours.
//
// Receivers check X-Terratask-Signature with Verify and deduplicate on
// X-Terratask-Delivery, the event's ID.
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TransitionID is the ID of the event a task's transition emits: the task
// and the transition's sequence number in the workflow's own log stream,
// so every record of that transition names the same event.
func TransitionID(taskID string, seq int64) string {
	return fmt.Sprintf("evt-%s-%d", taskID, seq)
}

// EmitID is the ID of an event emitted outside a transition (such as
// drift.detected): one per task, type and key.
func EmitID(taskID string, typ task.EventType, key string) string {
	if key == "" {
		return fmt.Sprintf("evt-%s-%s", taskID, typ)
	}
	return fmt.Sprintf("evt-%s-%s-%s", taskID, typ, key)
}

// TaskAt is the task row as a transition leaves it: tr laid over row by the
// store's rules (an empty or nil field keeps the row's value).
func TaskAt(row store.Task, tr store.Transition) store.Task {
	t := row
	if tr.Status != "" {
		t.Status = tr.Status
	}
	t.Progress = max(t.Progress, tr.Progress)
	if tr.CurrentStep != "" {
		t.CurrentStep = tr.CurrentStep
	}
	t.StepsCompleted = max(t.StepsCompleted, tr.StepsCompleted)
	if tr.TotalSteps != 0 {
		t.TotalSteps = tr.TotalSteps
	}
	if tr.Result != nil {
		t.Result = tr.Result
	}
	if !tr.UpdatedAt.IsZero() {
		t.UpdatedAt = tr.UpdatedAt
	}
	if tr.StartedAt != nil {
		t.StartedAt = tr.StartedAt
	}
	if tr.CompletedAt != nil {
		t.CompletedAt = tr.CompletedAt
	}
	if tr.CancelledAt != nil {
		t.CancelledAt = tr.CancelledAt
	}
	if tr.CancelledBy != "" {
		t.CancelledBy = tr.CancelledBy
	}
	if tr.Policy != nil {
		t.Policy = tr.Policy
	}
	return t
}

// New builds the stored event of type typ about t at occurredAt. The body
// embeds the Task Object, with its result once the task is terminal.
func New(id string, typ task.EventType, t store.Task, occurredAt time.Time) (store.Event, error) {
	view := TaskObject(t, t.Status.Terminal())
	body, err := json.Marshal(api.Event{ID: id, Type: typ, OccurredAt: api.LogTime(occurredAt), Task: &view})
	if err != nil {
		return store.Event{}, fmt.Errorf("encoding event %s: %w", id, err)
	}
	return store.Event{
		ID: id, Org: t.Org, TaskID: t.ID, AgentID: t.AgentID, RunnerID: t.RunnerID, Type: typ,
		OccurredAt: occurredAt.UTC(), Body: body,
	}, nil
}

// Ping is the body of the ping sent to a new webhook.
func Ping(id string, hook api.Webhook, at time.Time) ([]byte, error) {
	return json.Marshal(api.Event{ID: id, Type: task.EventPing, OccurredAt: api.LogTime(at), Webhook: &hook})
}

// TaskObject renders a stored task as the API's Task Object, which an
// event's body embeds and the task routes show; withResult adds the result
// (the detail view, a terminal task's event).
func TaskObject(t store.Task, withResult bool) api.Task {
	v := api.Task{
		ID: t.ID, Name: t.Name, Description: t.Description, Status: t.Status, Progress: t.Progress,
		CreatedAt: api.Time(t.CreatedAt), UpdatedAt: api.Time(t.UpdatedAt), StartedAt: api.TimePtr(t.StartedAt),
		CompletedAt: api.TimePtr(t.CompletedAt), AgentID: t.AgentID, RunnerID: t.RunnerID,
		Metadata: t.Metadata, CancelledAt: api.TimePtr(t.CancelledAt), CancelledBy: t.CancelledBy,
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	if a := t.Approval; a != nil {
		v.ApprovedBy, v.ApprovedAt = a.ApprovedBy, api.TimePtr(a.ApprovedAt)
		v.RejectedBy, v.RejectedAt = a.RejectedBy, api.TimePtr(a.RejectedAt)
		v.ApprovalComment = a.Comment
	}
	v.Policy = t.Policy
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
