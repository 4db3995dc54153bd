package api

import (
	"github.com/terratask/terratask/task"
)

// Event is an event terratask emits: the body of a webhook or notify
// delivery, and the data of an event of GET /events. Task is the Task
// Object at the moment of the event (with its result once the task ended);
// Webhook is set only on a ping, the test delivery of a new webhook.
type Event struct {
	ID         string         `json:"id"`
	Type       task.EventType `json:"type"`
	OccurredAt string         `json:"occurred_at"`
	Task       *Task          `json:"task,omitempty"`
	Webhook    *Webhook       `json:"webhook,omitempty"`
}

// Webhook is a webhook as the API shows it. Secret is set only in the
// answer to the create request that generated it: it is never shown again.
type Webhook struct {
	ID        string           `json:"id"`
	URL       string           `json:"url"`
	Events    []task.EventType `json:"events"`
	Agent     string           `json:"agent,omitempty"`
	Runner    string           `json:"runner,omitempty"`
	CreatedAt string           `json:"created_at"`
	CreatedBy string           `json:"created_by"`
	Secret    string           `json:"secret,omitempty"`
}

// NewWebhook is the body of POST /webhooks. Events empty means every
// event type; Secret empty has the server generate one (returned once).
type NewWebhook struct {
	URL    string           `json:"url"`
	Events []task.EventType `json:"events,omitempty"`
	Agent  string           `json:"agent,omitempty"`
	Runner string           `json:"runner,omitempty"`
	Secret string           `json:"secret,omitempty"`
}

// Delivery is one attempt to deliver an event to a webhook (GET
// /webhooks/{id}/deliveries).
type Delivery struct {
	ID         int64          `json:"id"`
	EventID    string         `json:"event_id"`
	EventType  task.EventType `json:"event_type"`
	TaskID     string         `json:"task_id"`
	Attempt    int            `json:"attempt"`
	StatusCode int            `json:"status_code"`
	LatencyMS  float64        `json:"latency_ms"`
	Succeeded  bool           `json:"succeeded"`
	Error      string         `json:"error"`
	At         string         `json:"at"`
}

// SigningSecret is the body of GET /webhooks/signing-secret: the secret
// that signs the deliveries of tasks' notify callbacks of an org.
type SigningSecret struct {
	Org    string `json:"org"`
	Secret string `json:"secret"`
}

// StatusEvent is the data of a `status` event of a followed task's log
// stream: one per transition of the task.
type StatusEvent struct {
	TaskID    string      `json:"task_id"`
	Status    task.Status `json:"status"`
	Step      task.Step   `json:"step"`
	Progress  int         `json:"progress"`
	Message   string      `json:"message"`
	Timestamp string      `json:"timestamp"`
}

// EndEvent is the data of the `end` event that closes a followed task's
// log stream: the task ended and its last log lines were sent.
type EndEvent struct {
	TaskID string      `json:"task_id"`
	Status task.Status `json:"status"`
}
