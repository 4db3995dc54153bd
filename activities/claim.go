package activities

import (
	"context"
	"fmt"
	"slices"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/task"
)

// ErrTypeHostAvoided is the type of the retryable error with which a host
// the task avoids refuses its claim (see Runner.Claim).
const ErrTypeHostAvoided = "host_avoided"

// ErrTypeWrongOrg is the type of the non-retryable error with which a
// runner refuses a step of another org's task (see Runner.begin). The org's
// queue and key keep such a step from reaching it; this is the last guard.
const ErrTypeWrongOrg = "wrong_org"

// avoidAttempts is how many attempts of a claim a host the task avoids
// refuses.
const avoidAttempts = 3

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
//
// A host that in.AvoidHosts names was declared lost for this task (it went
// silent: frozen, partitioned, overloaded) and may be so again, so it
// refuses the claim's first avoidAttempts attempts with a retryable
// ErrTypeHostAvoided error, leaving the retries to the runner's other
// hosts. From the next attempt on it takes the task: a runner whose only
// host came back still runs it, some 7 s later (the workflow's lease
// version retries a claim after 1, 2 and 4 s), where refusing for good
// would leave the task to fail for want of another host. Three refusals
// leave other hosts, which poll the same queue, three chances to take the
// claim first. The refusal comes before anything else, so it writes
// nothing to the task's logs (only to the runner's own log): the host never
// ran the claim.
func (r *Runner) Claim(ctx context.Context, in StepInput) (out ClaimOutput, err error) {
	if attempt := activity.GetInfo(ctx).Attempt; attempt <= avoidAttempts && slices.Contains(in.AvoidHosts, r.HostID) {
		r.logger().Info("refusing the claim of a task that declared this host lost",
			zap.String("task", in.Task.ID), zap.Int32("attempt", attempt))
		return out, temporal.NewApplicationError(
			fmt.Sprintf("host %s was declared lost for this task: leaving the claim to another host of runner %s", r.HostID, r.RunnerID),
			ErrTypeHostAvoided)
	}
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
	s.book.runner(task.LevelInfo, "picked up by host %s (run %d)", r.HostID, run)
	out = ClaimOutput{Host: r.HostID, HostQueue: task.HostTaskQueue(r.Org, r.RunnerID, r.HostID)}
	if in.Install {
		inst, err := s.install(ctx)
		if err != nil {
			return out, err
		}
		out.TerraformPath, out.Version = inst.TerraformPath, inst.Version
	}
	return out, nil
}
