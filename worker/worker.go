// Package worker wires terratask's Temporal workers: the control-plane worker
// that runs the task workflow and records transitions in the store, and the
// runner workers that execute Terraform for one runner ID (one on the
// runner's shared queue, one on this host's own queue).
package worker

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/workflows"
)

// ControlOptions configure the control-plane worker.
type ControlOptions struct {
	// Secrets opens webhook secrets and derives the signing secret of
	// notify deliveries.
	Secrets *master.Box
	Logger  *zap.Logger
	// ObserveDelivery, when set, is called with the outcome of each
	// delivery attempt (controlplane.Outcome*) and the event's type: the hook
	// of a deliveries-by-outcome metric.
	ObserveDelivery func(outcome, eventType string)
	// WebhookAllow (--webhook-allow) and NotifyAllow (--notify-allow) list
	// the hosts webhook and notify deliveries may reach although they are
	// not public; deliveries connect to nothing else internal.
	WebhookAllow, NotifyAllow events.AllowList
}

// NewControlPlane returns the worker of the control-plane task queue: the
// task, workspace and delivery workflows, the Record and other local
// activities, and the delivery activity.
func NewControlPlane(c client.Client, st store.Store, o ControlOptions) sdkworker.Worker {
	w := sdkworker.New(c, task.ControlPlaneTaskQueue, sdkworker.Options{})
	var wo workflows.Options
	if o.Secrets != nil {
		// Only the API (or a holder of the secret key) decides a plan.
		wo.CheckDecision = o.Secrets.CheckDecision
	}
	workflows.Register(w, wo)
	ctl := &controlplane.Control{Store: st, Temporal: c, Secrets: o.Secrets}
	w.RegisterActivityWithOptions(ctl.Record, activity.RegisterOptions{Name: controlplane.NameRecord})
	w.RegisterActivityWithOptions(ctl.AcquireWorkspace, activity.RegisterOptions{Name: controlplane.NameAcquireWorkspace})
	w.RegisterActivityWithOptions(ctl.TaskOpen, activity.RegisterOptions{Name: controlplane.NameTaskOpen})
	w.RegisterActivityWithOptions(ctl.Emit, activity.RegisterOptions{Name: controlplane.NameEmit})
	w.RegisterActivityWithOptions(ctl.CheckPolicy, activity.RegisterOptions{Name: controlplane.NameCheckPolicy})
	var box *secret.Box
	if o.Secrets != nil {
		box = o.Secrets.Box
	}
	d := &controlplane.Deliverer{Store: st, Secrets: box, Logger: o.Logger, Observe: o.ObserveDelivery,
		Sender:       events.NewSender(0, &events.Guard{Allow: o.WebhookAllow, Flag: "--webhook-allow"}),
		NotifySender: events.NewSender(0, &events.Guard{Allow: o.NotifyAllow, Flag: "--notify-allow"}),
	}
	w.RegisterActivityWithOptions(d.Deliver, activity.RegisterOptions{Name: events.ActivityDeliver})
	return w
}

// NewRunner returns the two workers of a runner host: Claim on the runner's
// shared queue, every later step on the host's own queue. It also wires the
// runner's progress reports to the task workflow's progress signal and its
// heartbeats to the client.
func NewRunner(c client.Client, r *activities.Runner, opts sdkworker.Options) []sdkworker.Worker {
	if r.Progress == nil {
		r.Progress = func(ctx context.Context, workflowID, runID string, p task.Progress) error {
			return c.SignalWorkflow(ctx, workflowID, runID, task.SignalProgress, p)
		}
	}
	// Steps send their heartbeats themselves, at every tick, so a cancel
	// reaches Terraform within about a tick; they tell a failed heartbeat
	// RPC (which the SDK's own heartbeat turns into a cancel) from the
	// server's answer (activities/heartbeat.go).
	if r.Heartbeat == nil {
		r.Heartbeat = c.RecordActivityHeartbeat
	}
	if opts.Identity == "" {
		// The runners routes list hosts by this identity.
		opts.Identity = RunnerIdentity(r)
	}
	// One poller on the shared queue: a claim is short, and a frozen
	// host's open polls each take a claim that then waits out the claim's
	// heartbeat timeout before it is retried on another host.
	sharedOpts := opts
	sharedOpts.MaxConcurrentActivityTaskPollers = 1
	shared := sdkworker.New(c, task.RunnerTaskQueue(r.Org, r.RunnerID), sharedOpts)
	shared.RegisterActivityWithOptions(r.Claim, activity.RegisterOptions{Name: activities.NameClaim})

	host := sdkworker.New(c, task.HostTaskQueue(r.Org, r.RunnerID, r.HostID), opts)
	for name, fn := range map[string]any{
		activities.NameInstall: r.Install,
		activities.NameInit:    r.Init,
		activities.NamePlan:    r.Plan,
		activities.NameApply:   r.Apply,
		activities.NameCleanup: r.Cleanup,
	} {
		host.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	host.RegisterActivityWithOptions(forceStop, activity.RegisterOptions{Name: activities.NameForceStop})
	return []sdkworker.Worker{shared, host}
}

// forceStop kills every process of a task on this host (force cancel).
func forceStop(_ context.Context, in activities.StepInput) (int, error) {
	return activities.StopTaskProcesses(in.Task.ID), nil
}

// StartAll starts workers, stopping those already started when one fails.
func StartAll(ws []sdkworker.Worker) error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, s := range ws[:i] {
				s.Stop()
			}
			return fmt.Errorf("starting worker: %w", err)
		}
	}
	return nil
}

// StopAll stops workers; Stop waits for running activities up to the
// worker's WorkerStopTimeout.
func StopAll(ws []sdkworker.Worker) {
	for _, w := range ws {
		w.Stop()
	}
}
