package e2e

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// TestCreateStartsTheWorkflowEagerly: dev's API and its control-plane worker
// share one Temporal client, so a created task's first workflow task comes
// back in the start's answer (eager workflow start) instead of through
// matching. Temporal gives the events of one batch (one transaction)
// consecutive task IDs: the start, the first workflow task scheduled and
// that task started are one batch when the start was eager, where the task
// started by matching is a later batch.
func TestCreateStartsTheWorkflowEagerly(t *testing.T) {
	t.Parallel()
	tk := shared.create(t, map[string]any{"name": "eager", "agent_id": "agent-eager", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "echo"), "word": "eager"}})
	if s := waitEnd(t, shared, tk.ID); s[len(s)-1].Status != "completed" {
		t.Fatalf("task %+v", s[len(s)-1])
	}
	c := dialShared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, tk.ID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() && len(events) < 3 {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	want := []enumspb.EventType{enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED}
	for i, ev := range events {
		if ev.GetEventType() != want[i] {
			t.Fatalf("event %d is %v, want %v", i+1, ev.GetEventType(), want[i])
		}
	}
	if len(events) != 3 || events[1].GetTaskId() != events[0].GetTaskId()+1 || events[2].GetTaskId() != events[0].GetTaskId()+2 {
		t.Fatalf("the first workflow task started in a later batch than the start (task IDs %d, %d): not eager",
			events[0].GetTaskId(), events[len(events)-1].GetTaskId())
	}
}
