package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/terratask/terratask/task"
)

// RunnerHost is what one runner host publishes about itself: the engines it
// offers. Every host writes its row when it starts and refreshes it while it
// runs (UpdatedAt), so any API replica can tell what a runner offers, and
// which hosts are still there.
type RunnerHost struct {
	// Org is the org the runner belongs to: runner IDs are per org.
	Org      string
	RunnerID string
	HostID   string
	// Identity is the host's Temporal worker identity, as the pollers of
	// the runner's task queue show it.
	Identity string
	Engines  []task.EngineInfo
	// StartedAt is when the host's process started; UpdatedAt its latest
	// refresh.
	StartedAt time.Time
	UpdatedAt time.Time
}

// Check says what makes h unfit to store: both stores refuse a row without
// org, runner or host ID.
func (h RunnerHost) Check() error {
	if h.Org == "" || h.RunnerID == "" || h.HostID == "" {
		return errors.New("runner host: org, runner and host IDs are required")
	}
	return nil
}

// EnginesJSON is h.Engines as both stores keep them: a JSON array, empty
// for a host that offers none.
func (h RunnerHost) EnginesJSON() ([]byte, error) {
	if h.Engines == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(h.Engines)
}

// RunnerHostTTL is how long a host that stopped refreshing its row is kept:
// PutRunnerHost removes the rows of its runner older than this.
const RunnerHostTTL = 7 * 24 * time.Hour

// RunnerHostStore keeps the runner hosts' rows.
type RunnerHostStore interface {
	// PutRunnerHost inserts or replaces the row of (Org, RunnerID, HostID),
	// and removes the rows of the same runner not updated for RunnerHostTTL.
	PutRunnerHost(ctx context.Context, h RunnerHost) error
	// RunnerHosts returns the rows of org's runner, by host ID.
	RunnerHosts(ctx context.Context, org, runnerID string) ([]RunnerHost, error)
}

// Schedule is a row of the schedule index. The schedule itself is a Temporal
// Schedule of the same ID, which starts its tasks; the row is what the API
// lists and shows of it. Definition is the schedule as the API renders it
// (package schedules): the store keeps it as opaque JSON.
type Schedule struct {
	ID   string
	Org  string
	Name string
	// Kind is "task" or "drift".
	Kind string
	// AgentID and RunnerID are those of the schedule's task template.
	AgentID    string
	RunnerID   string
	Definition json.RawMessage
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Check says what makes s unfit to store: both stores refuse a schedule
// without ID or org, or whose definition is not JSON.
func (s Schedule) Check() error {
	switch {
	case s.ID == "" || s.Org == "":
		return errors.New("schedule ID and org are required")
	case !json.Valid(s.Definition):
		return fmt.Errorf("schedule %s: definition is not JSON", s.ID)
	}
	return nil
}

// ScheduleQuery selects a page of an org's schedules, newest first (by
// CreatedAt, then ID). Empty filters match everything.
type ScheduleQuery struct {
	Org     string
	AgentID string
	Kind    string
	Limit   int // required, > 0
	Offset  int
}

// ScheduleStore keeps the schedule index.
type ScheduleStore interface {
	// CreateSchedule inserts a schedule; an existing ID is an error.
	CreateSchedule(ctx context.Context, s Schedule) error
	// GetSchedule returns a schedule of org, or ErrNotFound.
	GetSchedule(ctx context.Context, org, id string) (Schedule, error)
	// UpdateSchedule replaces the name, kind, agent, runner, definition
	// and UpdatedAt of org's schedule s.ID; ErrNotFound when missing.
	UpdateSchedule(ctx context.Context, s Schedule) error
	// DeleteSchedule removes org's schedule id; ErrNotFound when missing.
	DeleteSchedule(ctx context.Context, org, id string) error
	// ListSchedules returns a page and the number of matching schedules.
	ListSchedules(ctx context.Context, q ScheduleQuery) ([]Schedule, int, error)
}
