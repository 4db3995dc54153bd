package task

// EventType names an event terratask emits about a task (or a drift check).
// The same names are the webhook's X-Terratask-Event header, the SSE event
// stream's types and the events filter of webhooks and notify.
type EventType string

// Event types.
const (
	EventTaskCreated         EventType = "task.created"
	EventTaskRunning         EventType = "task.running"
	EventTaskStep            EventType = "task.step" // a step started
	EventTaskWaitingApproval EventType = "task.waiting_approval"
	EventTaskCompleted       EventType = "task.completed"
	EventTaskFailed          EventType = "task.failed"
	EventTaskCancelled       EventType = "task.cancelled"
	EventTaskRejected        EventType = "task.rejected"
	// EventDriftDetected: a drift-detecting plan found drift.
	EventDriftDetected EventType = "drift.detected"
	// EventPing is sent once to a new webhook; it is no task's event.
	EventPing EventType = "ping"
)

// EventTypes lists every event type a webhook or notify may subscribe to.
var EventTypes = []EventType{EventTaskCreated, EventTaskRunning, EventTaskStep, EventTaskWaitingApproval,
	EventTaskCompleted, EventTaskFailed, EventTaskCancelled, EventTaskRejected, EventDriftDetected}

// Valid reports whether e is an event type one may subscribe to.
func (e EventType) Valid() bool {
	for _, v := range EventTypes {
		if v == e {
			return true
		}
	}
	return false
}

// EventForStatus is the event of a task entering status s; "" for a status
// that has none (pending is task.created, emitted once; cancelling has none).
func EventForStatus(s Status) EventType {
	switch s {
	case StatusRunning:
		return EventTaskRunning
	case StatusWaitingApproval:
		return EventTaskWaitingApproval
	case StatusCompleted:
		return EventTaskCompleted
	case StatusFailed:
		return EventTaskFailed
	case StatusCancelled:
		return EventTaskCancelled
	case StatusRejected:
		return EventTaskRejected
	}
	return ""
}
