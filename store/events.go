package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/terratask/terratask/task"
)

// ErrClosed is returned by Listen when the store closes.
var ErrClosed = errors.New("store closed")

// Event is a stored event (see package events): a task's transition that
// emits one, or a drift check's finding. Body is the event as delivered
// (the JSON of api.Event, rendered by package events); the other fields are
// what the store filters on.
type Event struct {
	// ID is deterministic (package events derives it from the task and the
	// transition), so recording the same event twice stores it once.
	ID       string
	Org      string
	TaskID   string
	AgentID  string
	RunnerID string
	Type     task.EventType
	// OccurredAt is when the transition happened.
	OccurredAt time.Time
	Body       json.RawMessage
	// Seq is assigned by the store in insertion order, increasing within an
	// org in commit order, so it is the cursor of an org's event stream;
	// read-only.
	Seq int64
}

// EventQuery selects an org's events in Seq order. Empty filters match
// everything.
type EventQuery struct {
	Org      string
	AfterSeq int64 // cursor: only events with Seq > AfterSeq
	Types    []task.EventType
	AgentID  string
	RunnerID string
	TaskID   string
	Limit    int // required, > 0
}

// Webhook is an org's subscription to its events, managed by admin keys.
type Webhook struct {
	ID  string
	Org string
	URL string
	// Events filters by type; empty means every event type.
	Events []task.EventType
	// AgentID and RunnerID, when set, filter by the task's agent and runner.
	AgentID  string
	RunnerID string
	// SealedSecret is the signing secret, sealed by the server (package
	// secret); the store never sees it in plain text.
	SealedSecret []byte
	CreatedAt    time.Time
	CreatedBy    string
}

// Matches reports whether the webhook subscribes to an event.
func (w Webhook) Matches(e Event) bool {
	if w.AgentID != "" && w.AgentID != e.AgentID {
		return false
	}
	if w.RunnerID != "" && w.RunnerID != e.RunnerID {
		return false
	}
	if len(w.Events) == 0 {
		return true
	}
	for _, t := range w.Events {
		if t == e.Type {
			return true
		}
	}
	return false
}

// NotifyTarget is the Target of deliveries to a task's own notify URL.
const NotifyTarget = "notify"

// Delivery is one attempt to deliver an event to a target: a webhook (its
// ID) or a task's notify URL (NotifyTarget).
type Delivery struct {
	Org     string
	EventID string
	// EventType and TaskID are copied from the event, for the log.
	EventType task.EventType
	TaskID    string
	Target    string
	Attempt   int
	// StatusCode is the receiver's HTTP status; 0 when none came (a
	// connection error or a timeout).
	StatusCode int
	Latency    time.Duration
	// Error says why the attempt failed ("" when it succeeded). It never
	// holds a secret nor the receiver's body.
	Error     string
	Succeeded bool
	At        time.Time
	// ID is assigned by the store; read-only.
	ID int64
}

// DeliveryQuery selects an org's delivery attempts to one target, newest
// first.
type DeliveryQuery struct {
	Org      string
	Target   string
	EventID  string // "" for all events
	BeforeID int64  // cursor: only attempts with ID < BeforeID (0: from the newest)
	Limit    int    // required, > 0
}

// TransitionRecord is one transition of a task as the task workflow records
// it: the index row (inserted if missing), the transition, its log lines
// and the event it emits, if any. RecordTransition writes it all in one
// transaction.
type TransitionRecord struct {
	Task       Task
	Transition Transition
	Logs       []LogEntry
	Event      *Event
}

// Change tells followers that something they may follow was written: new
// log lines of a task (TaskID), or a new event of an org (Org). All set
// means anything may have changed (a missed notification), so every
// follower should read again.
type Change struct {
	TaskID string
	Org    string
	All    bool
}

// EventStore keeps events, webhooks and the delivery log, and tells
// followers about new log lines and events.
type EventStore interface {
	// RecordTransition writes a transition record in one transaction (see
	// TransitionRecord): CreateTask, ApplyTransition (a missing task is not
	// an error), AppendLogs, and the event, which is stored once per ID. It
	// returns the org's webhooks when the record has an event (nil
	// otherwise), read in the same transaction, for the caller to match.
	RecordTransition(ctx context.Context, r TransitionRecord) ([]Webhook, error)
	// AppendEvent stores an event that no transition records (drift.detected),
	// once per ID, and returns the org's webhooks as RecordTransition does.
	AppendEvent(ctx context.Context, e Event) ([]Webhook, error)
	// GetEvent returns an event of org, or ErrNotFound.
	GetEvent(ctx context.Context, org, id string) (Event, error)
	// ListEvents returns an org's events in Seq order.
	ListEvents(ctx context.Context, q EventQuery) ([]Event, error)
	// LastEventSeq returns the highest Seq of an org's events (0: none).
	LastEventSeq(ctx context.Context, org string) (int64, error)

	// CreateWebhook stores a webhook; its ID must be new.
	CreateWebhook(ctx context.Context, w Webhook) error
	// GetWebhook returns a webhook of org, or ErrNotFound.
	GetWebhook(ctx context.Context, org, id string) (Webhook, error)
	// ListWebhooks returns an org's webhooks, oldest first.
	ListWebhooks(ctx context.Context, org string) ([]Webhook, error)
	// DeleteWebhook deletes a webhook of org and its delivery log, or
	// returns ErrNotFound.
	DeleteWebhook(ctx context.Context, org, id string) error

	// AddDelivery records a delivery attempt.
	AddDelivery(ctx context.Context, d Delivery) error
	// ListDeliveries returns attempts, newest first.
	ListDeliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, error)
	// Delivered reports whether an attempt to deliver the event to target
	// succeeded.
	Delivered(ctx context.Context, org, eventID, target string) (bool, error)

	// Listen calls fn for every change written through any store of the
	// same database, in this process or another, until ctx ends (nil) or
	// the store closes (ErrClosed). fn must not block. A follower subscribes (through package events' hub) before
	// it reads, so a line written between its read and its wait still
	// wakes it.
	Listen(ctx context.Context, fn func(Change)) error
}

// Check says what both stores refuse in a webhook to create.
func (w Webhook) Check() error {
	if w.ID == "" || w.Org == "" || w.URL == "" {
		return errors.New("ID, org and URL are required")
	}
	return nil
}

// Check says what both stores refuse in a delivery attempt to record.
func (d Delivery) Check() error {
	if d.Org == "" || d.EventID == "" || d.Target == "" {
		return errors.New("org, event ID and target are required")
	}
	return nil
}
