package activities

import (
	"context"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// stepClaim and stepCleanup name the log streams of the two activities that
// are not task steps.
const (
	stepClaim   task.Step = "claim"
	stepCleanup task.Step = "cleanup"
)

// Claim runs on the runner's shared queue: the host that picks the task up
// tells the workflow its own queue, where every later step runs.
func (r *Runner) Claim(ctx context.Context, in StepInput) (out ClaimOutput, err error) {
	s, err := r.begin(ctx, in, stepClaim, true)
	ctx = s.ctx
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return out, err
	}
	run := max(in.Run, 1)
	s.book.runner(store.LevelInfo, "picked up by host %s (run %d)", r.HostID, run)
	return ClaimOutput{Host: r.HostID, HostQueue: task.HostTaskQueue(r.RunnerID, r.HostID)}, nil
}
