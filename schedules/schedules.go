// Package schedules runs terratask tasks on a schedule. A schedule is a
// Temporal Schedule (client.ScheduleClient): Temporal keeps its times, its
// pause state and its overlap policy, survives any restart, and shows it on
// the Web UI's Schedules page. Its action starts the task workflow
// (task.WorkflowType on task.ControlPlaneTaskQueue) with the task's search
// attributes; the input's ID is left empty, so each run takes the workflow
// ID Temporal gives it (the action's ID and the run's time).
//
// The package maps a schedule's definition (Spec, Overlap, the task's
// input) onto Temporal and reads a schedule's live state back (Info). The
// HTTP server parses requests and keeps the schedule index in the store.
package schedules

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	schedulepb "go.temporal.io/api/schedule/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/service/worker/scheduler"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/terratask/terratask/task"
)

// Kind is what a schedule's tasks do.
type Kind string

// Kinds of schedule.
const (
	// KindTask runs its template as given.
	KindTask Kind = "task"
	// KindDrift runs its template as a plan-only task with detect_drift.
	KindDrift Kind = "drift"
)

// Kinds lists every kind.
var Kinds = []Kind{KindTask, KindDrift}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return slices.Contains(Kinds, k) }

// Overlap says what happens when a run is due while an earlier one of the
// schedule is still running. Temporal's terminate_other is not offered: a
// terminated task records no end in the store and leaves its state lock.
type Overlap string

// Overlap policies.
const (
	// OverlapSkip skips the run (the default).
	OverlapSkip Overlap = "skip"
	// OverlapBufferOne starts it when the running one ends; one waits at
	// most, later ones are skipped.
	OverlapBufferOne Overlap = "buffer_one"
	// OverlapBufferAll starts every one in turn.
	OverlapBufferAll Overlap = "buffer_all"
	// OverlapCancelOther cancels the running task, then starts the new one.
	OverlapCancelOther Overlap = "cancel_other"
	// OverlapAllowAll starts it at once (tasks of one workspace still run
	// one at a time, in order).
	OverlapAllowAll Overlap = "allow_all"
)

// Overlaps lists every policy.
var Overlaps = []Overlap{OverlapSkip, OverlapBufferOne, OverlapBufferAll, OverlapCancelOther, OverlapAllowAll}

var overlapPolicies = map[Overlap]enumspb.ScheduleOverlapPolicy{
	OverlapSkip:        enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	OverlapBufferOne:   enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	OverlapBufferAll:   enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	OverlapCancelOther: enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
	OverlapAllowAll:    enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
}

// Valid reports whether o is a known policy.
func (o Overlap) Valid() bool { _, ok := overlapPolicies[o]; return ok }

func (o Overlap) policy() enumspb.ScheduleOverlapPolicy {
	if p, ok := overlapPolicies[o]; ok {
		return p
	}
	return enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
}

// Spec says when a schedule runs: a cron expression or an interval, in a
// time zone, each run delayed by a random jitter up to Jitter.
type Spec struct {
	// Cron is a cron expression as Temporal reads it: 5 fields (minute,
	// hour, day of month, month, day of week), 6 (and year) or 7 (seconds
	// first), or @yearly, @monthly, @weekly, @daily, @hourly, @every D.
	Cron string `json:"cron,omitempty"`
	// Interval runs it every Interval, counted from the Unix epoch.
	Interval task.Duration `json:"interval,omitempty"`
	// TimeZone is an IANA zone name for Cron ("" is UTC).
	TimeZone string `json:"time_zone,omitempty"`
	// Jitter delays each run by a random time up to it.
	Jitter task.Duration `json:"jitter,omitempty"`
}

// SpecError is a spec that Temporal would not accept; Field names the
// offending field (cron, interval, time_zone or jitter).
type SpecError struct {
	Field string
	Err   error
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

// MinInterval is the shortest interval Temporal runs.
const MinInterval = time.Second

// specBuilder compiles specs as the Temporal server does, so a spec the
// API accepts is one Temporal accepts.
var specBuilder = scheduler.NewSpecBuilder(dynamicconfig.GetIntPropertyFn(scheduler.DefaultWarnIterations),
	dynamicconfig.GetIntPropertyFn(1_000_000))

// Validate checks the spec as Temporal will, field by field.
func (s Spec) Validate() error {
	switch {
	case s.Cron == "" && s.Interval == 0:
		return &SpecError{Field: "cron", Err: errors.New("give a cron expression or an interval")}
	case s.Cron != "" && s.Interval != 0:
		return &SpecError{Field: "interval", Err: errors.New("give a cron expression or an interval, not both")}
	case s.Interval != 0 && time.Duration(s.Interval) < MinInterval:
		return &SpecError{Field: "interval", Err: fmt.Errorf("must be at least %s", MinInterval)}
	case s.Jitter < 0:
		return &SpecError{Field: "jitter", Err: errors.New("must not be negative")}
	case strings.ContainsAny(s.Cron, "\n\r\x00"):
		return &SpecError{Field: "cron", Err: errors.New("must be one line")}
	case strings.Contains(s.Cron, "TZ="):
		return &SpecError{Field: "cron", Err: errors.New("give the time zone in time_zone, not in the expression")}
	}
	if s.TimeZone != "" {
		if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "Local" {
			return &SpecError{Field: "time_zone", Err: errors.New("is not an IANA time zone name such as Europe/Berlin")}
		}
	}
	pb := &schedulepb.ScheduleSpec{TimezoneName: s.TimeZone, Jitter: durationpb.New(time.Duration(s.Jitter))}
	field := "cron"
	if s.Cron != "" {
		pb.CronString = []string{s.Cron}
	} else {
		field = "interval"
		pb.Interval = []*schedulepb.IntervalSpec{{Interval: durationpb.New(time.Duration(s.Interval))}}
	}
	if _, err := specBuilder.NewCompiledSpec(pb); err != nil {
		return &SpecError{Field: field, Err: errors.New(firstLine(err.Error()))}
	}
	return nil
}

// temporal is the spec as the SDK takes it.
func (s Spec) temporal() client.ScheduleSpec {
	out := client.ScheduleSpec{TimeZoneName: s.TimeZone, Jitter: time.Duration(s.Jitter)}
	if s.Cron != "" {
		out.CronExpressions = []string{s.Cron}
	} else {
		out.Intervals = []client.ScheduleIntervalSpec{{Every: time.Duration(s.Interval)}}
	}
	return out
}

// Definition is what a schedule is, as the store keeps it and the API shows
// it. Template is the task's create body with secret values replaced.
type Definition struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	Spec
	Paused   bool            `json:"paused"`
	Overlap  Overlap         `json:"overlap"`
	Template json.RawMessage `json:"template"`
	// TemplateAuthors are the keys that wrote the template: the
	// schedule's creator, then each key that changed the template, each
	// once. Its tasks carry them (task.Input.Authors) for four eyes.
	TemplateAuthors []string `json:"template_authors,omitempty"`
}

// AddAuthor returns authors with key appended, unless it is there already.
func AddAuthor(authors []string, key string) []string {
	if slices.Contains(authors, key) {
		return authors
	}
	return append(slices.Clone(authors), key)
}

// IDPrefix starts every schedule ID.
const IDPrefix = "sched-"

// NewID returns "sched-" and 26 characters of base32 (130 random bits).
func NewID() string {
	return task.RandomID(IDPrefix)
}

// ActionID is the workflow ID of the schedule's action: "task-" and the
// schedule ID's random part. Temporal appends each run's time to it
// ("task-...-2026-01-02T03:04:05Z"), which is the run's task ID.
func ActionID(scheduleID string) string {
	return "task-" + strings.TrimPrefix(scheduleID, IDPrefix)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
