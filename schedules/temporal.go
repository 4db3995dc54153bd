package schedules

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/taskstart"
)

// ErrNotFound is a schedule Temporal does not have.
var ErrNotFound = errors.New("schedule not found in Temporal")

// Action is what a schedule starts: the task workflow with Input (whose ID
// is left empty: each run takes its workflow ID), started as any task is
// (package taskstart): its search attributes set from the start, so the
// Web UI can filter the runs like any task, and described for the Web UI.
type Action struct {
	Input task.Input
}

func (a Action) temporal(scheduleID string) *client.ScheduleWorkflowAction {
	in := a.Input
	in.ScheduleID = scheduleID
	return taskstart.ScheduleAction(ActionID(scheduleID), in)
}

// Client maps schedules onto Temporal Schedules.
type Client struct {
	c client.Client
}

// New returns a Client of c's namespace.
func New(c client.Client) *Client { return &Client{c: c} }

// Create creates the Temporal Schedule id. The schedule carries its
// action's search attributes too (the Web UI filters schedules by them).
func (s *Client) Create(ctx context.Context, id string, d Definition, a Action) error {
	_, err := s.c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:                    id,
		Spec:                  d.Spec.temporal(),
		Action:                a.temporal(id),
		Overlap:               d.Overlap.policy(),
		Paused:                d.Paused,
		Note:                  noteOf(d),
		TypedSearchAttributes: taskstart.SearchAttributes(a.Input),
	})
	if err != nil {
		return fmt.Errorf("creating Temporal schedule %s: %w", id, err)
	}
	return nil
}

// Update replaces the schedule's spec, overlap policy and pause state, and
// its action and search attributes when a is not nil (a new template); a
// nil a keeps the action as Temporal has it (the sealed secrets in it
// included).
func (s *Client) Update(ctx context.Context, id string, d Definition, a *Action) error {
	var searchAttrs *temporal.SearchAttributes
	if a != nil {
		sa := taskstart.SearchAttributes(a.Input)
		searchAttrs = &sa
	}
	h := s.c.ScheduleClient().GetHandle(ctx, id)
	err := h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		sch := in.Description.Schedule
		spec := d.Spec.temporal()
		sch.Spec = &spec
		if sch.Policy == nil {
			sch.Policy = &client.SchedulePolicies{}
		}
		sch.Policy.Overlap = d.Overlap.policy()
		if sch.State == nil {
			sch.State = &client.ScheduleState{}
		}
		if sch.State.Paused != d.Paused {
			sch.State.Paused = d.Paused
			sch.State.Note = noteOf(d)
		}
		if a != nil {
			sch.Action = a.temporal(id)
		}
		return &client.ScheduleUpdate{Schedule: &sch, TypedSearchAttributes: searchAttrs}, nil
	}})
	if isNotFound(err) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("updating Temporal schedule %s: %w", id, err)
	}
	return nil
}

func noteOf(d Definition) string {
	if d.Paused {
		return "paused through the terratask API"
	}
	return ""
}

// Delete removes the Temporal Schedule; tasks it started go on. A schedule
// Temporal no longer has is ErrNotFound.
func (s *Client) Delete(ctx context.Context, id string) error {
	err := s.c.ScheduleClient().GetHandle(ctx, id).Delete(ctx)
	if isNotFound(err) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting Temporal schedule %s: %w", id, err)
	}
	return nil
}

// Trigger starts a run now, whatever runs already (a task of a shared
// workspace still waits for its turn). Temporal names the run after the
// second it starts in: a second trigger within the same second starts
// nothing.
func (s *Client) Trigger(ctx context.Context, id string) error {
	err := s.c.ScheduleClient().GetHandle(ctx, id).Trigger(ctx, client.ScheduleTriggerOptions{
		Overlap: OverlapAllowAll.policy(),
	})
	if isNotFound(err) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("triggering Temporal schedule %s: %w", id, err)
	}
	return nil
}

// Run is one task a schedule started.
type Run struct {
	TaskID string
	// ScheduledAt is the time it was due (jitter included); StartedAt when
	// Temporal started it.
	ScheduledAt time.Time
	StartedAt   time.Time
}

// Info is a schedule's live state as Temporal describes it.
type Info struct {
	Paused bool
	Note   string
	// Recent are the latest runs (at most 10), newest first.
	Recent []Run
	// Next are the next due times (at most 10).
	Next []time.Time
	// Running are the task IDs of its runs that are still going.
	Running []string
	// Actions counts runs started; SkippedOverlap those the overlap
	// policy skipped.
	Actions        int
	SkippedOverlap int
}

// Describe reads the schedule's live state.
func (s *Client) Describe(ctx context.Context, id string) (Info, error) {
	d, err := s.c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if isNotFound(err) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, fmt.Errorf("describing Temporal schedule %s: %w", id, err)
	}
	info := Info{Next: d.Info.NextActionTimes, Actions: d.Info.NumActions, SkippedOverlap: d.Info.NumActionsSkippedOverlap,
		Running: []string{}, Recent: []Run{}}
	if st := d.Schedule.State; st != nil {
		info.Paused, info.Note = st.Paused, st.Note
	}
	for _, r := range d.Info.RecentActions {
		if r.StartWorkflowResult == nil {
			continue
		}
		info.Recent = append(info.Recent, Run{TaskID: r.StartWorkflowResult.WorkflowID, ScheduledAt: r.ScheduleTime, StartedAt: r.ActualTime})
	}
	sort.SliceStable(info.Recent, func(i, j int) bool { return info.Recent[i].StartedAt.After(info.Recent[j].StartedAt) })
	for _, w := range d.Info.RunningWorkflows {
		info.Running = append(info.Running, w.WorkflowID)
	}
	return info, nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
