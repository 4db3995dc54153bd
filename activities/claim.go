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
// tells the workflow its own queue, where every later step runs. With
// in.Install it also runs the installing step (see Install) and returns the
// binary: one activity instead of two. (A runner that predates Install
// ignores it; the later steps then find the binary themselves.)
func (r *Runner) Claim(ctx context.Context, in StepInput) (out ClaimOutput, err error) {
	step := stepClaim
	if in.Install {
		step = task.StepInstalling
	}
	s, err := r.begin(ctx, in, step, true)
	ctx = s.ctx
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return out, err
	}
	run := max(in.Run, 1)
	s.book.runner(store.LevelInfo, "picked up by host %s (run %d)", r.HostID, run)
	out = ClaimOutput{Host: r.HostID, HostQueue: task.HostTaskQueue(r.RunnerID, r.HostID)}
	if in.Install {
		inst, err := s.install(ctx)
		if err != nil {
			return out, err
		}
		out.TerraformPath, out.Version = inst.TerraformPath, inst.Version
	}
	return out, nil
}
