package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/events"
)

// deliveryAttemptTimeout bounds one delivery activity: the HTTP attempt
// (events.AttemptTimeout) and recording it.
const deliveryAttemptTimeout = events.AttemptTimeout + 10*time.Second

// Delivery is the delivery workflow of a task's events to one target (a
// webhook or the task's notify URL), ID events.WorkflowID. The control
// plane signals it with each event it records (events.SignalEvent); it
// delivers them one after another, in the order they came, each by an
// activity retried with backoff for events.RetryFor. An event it has
// queued before is ignored, so a retried signal delivers nothing twice. It
// ends when it has had nothing to do for events.IdleFor; a later event
// starts it again.
func Delivery(ctx workflow.Context, in events.WorkflowInput) error {
	log := workflow.GetLogger(ctx)
	signals := workflow.GetSignalChannel(ctx, events.SignalEvent)
	seen := map[string]bool{}
	var queue []events.Pending
	take := func(p events.Pending) {
		if p.EventID != "" && !seen[p.EventID] {
			seen[p.EventID] = true
			queue = append(queue, p)
		}
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    deliveryAttemptTimeout,
		ScheduleToCloseTimeout: events.RetryFor,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        events.FirstRetry,
			BackoffCoefficient:     2,
			MaximumInterval:        events.MaxRetryInterval,
			NonRetryableErrorTypes: []string{"secret"},
			// The window (ScheduleToCloseTimeout) is the bound; this only
			// says "not unlimited" (about 150 attempts fit in 24 hours).
			MaximumAttempts: 1000,
		},
	})
	for {
		for {
			var p events.Pending
			if !signals.ReceiveAsync(&p) {
				break
			}
			take(p)
		}
		if len(queue) == 0 {
			tctx, cancelTimer := workflow.WithCancel(ctx)
			got := false
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
				var p events.Pending
				c.Receive(ctx, &p)
				take(p)
				got = true
			})
			sel.AddFuture(workflow.NewTimer(tctx, events.IdleFor), func(workflow.Future) {})
			sel.Select(ctx)
			cancelTimer()
			if !got {
				return nil
			}
			continue
		}
		p := queue[0]
		queue = queue[1:]
		in := events.DeliverInput{WorkflowInput: in, EventID: p.EventID}
		if err := workflow.ExecuteActivity(actx, events.ActivityDeliver, in).Get(ctx, nil); err != nil {
			log.Warn("gave up delivering an event", "event", p.EventID, "target", in.Target, "error", err)
		}
	}
}
