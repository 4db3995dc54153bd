package events

import (
	"time"

	"github.com/terratask/terratask/task"
)

// Names of the delivery workflow, its signal and its activity, registered
// on the control-plane worker.
const (
	WorkflowType = "terratask.Delivery"
	// SignalEvent carries a Pending event to the workflow.
	SignalEvent = "event"
	// ActivityDeliver makes one attempt to deliver an event (DeliverInput).
	ActivityDeliver = "terratask.Deliver"
)

// Tunables of delivery.
const (
	// RetryFor is how long an event is retried before it is given up.
	RetryFor = 24 * time.Hour
	// FirstRetry and MaxRetryInterval shape the backoff: 1s, 2s, 4s, ...
	// up to 10 minutes between attempts.
	FirstRetry       = time.Second
	MaxRetryInterval = 10 * time.Minute
	// IdleFor is how long a delivery workflow with nothing queued waits for
	// the task's next event before it ends (a later event starts it again).
	IdleFor = 5 * time.Minute
)

// WorkflowID is the ID of the delivery workflow of a task's events to one
// target: a task's events go to a target one after another, in the order
// they were recorded.
func WorkflowID(taskID, target string) string {
	return "terratask-delivery/" + taskID + "/" + target
}

// WorkflowInput names the target of a delivery workflow. The event bodies
// are read from the store, so no task data travels in Temporal payloads.
type WorkflowInput struct {
	Org    string `json:"org"`
	TaskID string `json:"task_id"`
	// Target is a webhook ID, or store.NotifyTarget with URL set.
	Target string `json:"target"`
	URL    string `json:"url,omitempty"`
}

// Pending is an event queued for delivery.
type Pending struct {
	EventID string         `json:"event_id"`
	Type    task.EventType `json:"type"`
}

// DeliverInput is the input of ActivityDeliver.
type DeliverInput struct {
	WorkflowInput
	EventID string `json:"event_id"`
}
