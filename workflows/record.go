package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Typed search attribute keys, upserted at each transition (a task starts
// with them set: taskstart.SearchAttributes).
var (
	saStatus = temporal.NewSearchAttributeKeyKeyword(task.SearchAttrStatus)
	saAgent  = temporal.NewSearchAttributeKeyKeyword(task.SearchAttrAgent)
	saRunner = temporal.NewSearchAttributeKeyKeyword(task.SearchAttrRunner)
	saOrg    = temporal.NewSearchAttributeKeyKeyword(task.SearchAttrOrg)
)

// line is a log line the workflow writes about itself.
type line struct {
	level   task.Level
	message string
}

func logLine(level task.Level, msg string) line { return line{level: level, message: msg} }

// transition applies change to the state, then upserts search attributes
// (when the status moved) and records the new state with its log line.
// Inside batch, the record waits for the batch's end.
func (r *run) transition(ctx workflow.Context, change func(*task.State), l line) {
	before, beforeStep := r.state.Status, r.state.CurrentStep
	change(&r.state)
	r.setProgress(ctx)
	event := transitionEvent(!r.started, before, r.state.Status, beforeStep, r.state.CurrentStep)
	// In the claim-install version a first transition upserts nothing
	// when the start set the search attributes (the API does): pending is
	// there already.
	upsert := r.state.Status != before || !r.started
	if !r.started && r.fast && startedWithStatus(ctx) {
		upsert = false
	}
	r.started = true
	if upsert {
		err := workflow.UpsertTypedSearchAttributes(ctx,
			saStatus.ValueSet(string(r.state.Status)),
			saAgent.ValueSet(r.in.AgentID),
			saRunner.ValueSet(r.in.RunnerID),
			saOrg.ValueSet(r.in.Org),
		)
		if err != nil {
			workflow.GetLogger(ctx).Warn("upserting search attributes", "error", err)
		}
	}
	r.logSeq++
	meta := map[string]any{"component": "workflow", "status": string(r.state.Status), "progress": r.state.Progress}
	if r.state.CurrentStep != "" {
		meta["step"] = string(r.state.CurrentStep)
	}
	rec := controlplane.Record{
		Task: controlplane.TaskRow(r.in, len(r.steps)),
		Transition: store.Transition{
			ID:             r.in.ID,
			Status:         r.state.Status,
			Progress:       r.state.Progress,
			CurrentStep:    r.state.CurrentStep,
			StepsCompleted: r.state.StepsCompleted,
			TotalSteps:     r.state.TotalSteps,
			Result:         r.state.Result,
			UpdatedAt:      r.state.UpdatedAt,
			StartedAt:      r.state.StartedAt,
			CompletedAt:    r.state.CompletedAt,
			CancelledAt:    r.state.CancelledAt,
			CancelledBy:    r.state.CancelledBy,
			Approval:       r.state.Approval,
			Policy:         r.state.Policy,
			Plan:           r.state.Plan,
		},
		Logs: []store.LogEntry{{
			TaskID:    r.in.ID,
			Stream:    "task",
			Seq:       r.logSeq,
			Timestamp: r.state.UpdatedAt,
			Level:     l.level,
			Message:   l.message,
			Metadata:  meta,
		}},
		Event:  event,
		Notify: r.in.Params.Notify,
	}
	rec.Remediation = r.finalRemediation()
	if r.batch != nil {
		*r.batch = append(*r.batch, rec)
		return
	}
	r.record(ctx, rec)
}

// batchRecords runs transitions whose records one local activity writes, in
// order, once fn returns: for transitions that follow one another at once.
func (r *run) batchRecords(ctx workflow.Context, fn func()) {
	var recs []controlplane.Record
	r.batch = &recs
	fn()
	r.batch = nil
	if len(recs) == 0 {
		return
	}
	first := recs[0]
	first.Then = recs[1:]
	r.record(ctx, first)
}

// startedWithStatus reports whether the workflow started with its status
// search attribute set.
func startedWithStatus(ctx workflow.Context) bool {
	_, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(saStatus)
	return ok
}

// record runs the Record local activity.
func (r *run) record(ctx workflow.Context, rec controlplane.Record) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    100 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
		},
	})
	// The store is a projection: a failure to record is logged, never fails
	// the task (the local activity retries until its schedule ends).
	if err := workflow.ExecuteLocalActivity(lctx, controlplane.NameRecord, rec).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("recording transition", "error", err)
	}
}

// transitionEvent is the event a transition emits: task.created for a task's
// first one, the status's event when the status moved, task.step when a step
// started, else none.
func transitionEvent(first bool, before, after task.Status, beforeStep, afterStep task.Step) task.EventType {
	switch {
	case first:
		return task.EventTaskCreated
	case after != before:
		return task.EventForStatus(after)
	case afterStep != "" && afterStep != beforeStep:
		return task.EventTaskStep
	}
	return ""
}
