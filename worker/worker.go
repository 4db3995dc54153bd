// Package worker wires terratask's Temporal workers: the control-plane worker
// that runs the task workflow and records transitions in the store, and the
// runner workers that execute Terraform for one runner ID (one on the
// runner's shared queue, one on this host's own queue).
package worker

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/workflows"
)

// NewControlPlane returns the worker of the control-plane task queue.
func NewControlPlane(c client.Client, st store.Store) sdkworker.Worker {
	w := sdkworker.New(c, task.ControlPlaneTaskQueue, sdkworker.Options{})
	workflows.Register(w)
	ctl := &activities.Control{Store: st, Temporal: c}
	w.RegisterActivityWithOptions(ctl.Record, activity.RegisterOptions{Name: activities.NameRecord})
	w.RegisterActivityWithOptions(ctl.AcquireWorkspace, activity.RegisterOptions{Name: activities.NameAcquireWorkspace})
	w.RegisterActivityWithOptions(ctl.TaskOpen, activity.RegisterOptions{Name: activities.NameTaskOpen})
	return w
}

// NewRunner returns the two workers of a runner host: Claim on the runner's
// shared queue, every later step on the host's own queue. It also wires the
// runner's progress reports to the task workflow's progress signal.
func NewRunner(c client.Client, r *activities.Runner, opts sdkworker.Options) []sdkworker.Worker {
	if r.Progress == nil {
		r.Progress = func(ctx context.Context, workflowID, runID string, p task.Progress) error {
			return c.SignalWorkflow(ctx, workflowID, runID, task.SignalProgress, p)
		}
	}
	// Heartbeats reach the server at least every second, so a cancel
	// reaches Terraform within about a heartbeat tick (the SDK otherwise
	// throttles them to 80% of the heartbeat timeout).
	if opts.MaxHeartbeatThrottleInterval == 0 || opts.MaxHeartbeatThrottleInterval > time.Second {
		opts.MaxHeartbeatThrottleInterval = time.Second
	}
	if opts.DefaultHeartbeatThrottleInterval == 0 || opts.DefaultHeartbeatThrottleInterval > time.Second {
		opts.DefaultHeartbeatThrottleInterval = time.Second
	}
	if opts.Identity == "" {
		// The runners routes list hosts by this identity.
		opts.Identity = fmt.Sprintf("%s@%s/pid-%d", r.RunnerID, r.HostID, os.Getpid())
	}
	shared := sdkworker.New(c, task.RunnerTaskQueue(r.RunnerID), opts)
	shared.RegisterActivityWithOptions(r.Claim, activity.RegisterOptions{Name: activities.NameClaim})

	host := sdkworker.New(c, task.HostTaskQueue(r.RunnerID, r.HostID), opts)
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
