package activities

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/terratask/terratask/task"
)

// A plan that nobody waits on (approval none) is shown for review off the
// task's critical path: the plan step only records its digest, and its
// counts from Terraform's plan messages, and leaves a mark; the apply step
// then runs `terraform show -json` of a link to the plan file beside its own
// `terraform apply`, and stores the review before it ends, whatever the
// apply's outcome. A task that ends between the two (cancelled, failed) has
// its plan shown by Cleanup. The text form of such a plan is rendered from
// its JSON form when asked for (api.PlanText), not by a second Terraform.
// A task whose plan may wait (approval required or destructive) and a
// plan-only task keep their plan in the plan step, as before.

// deferReview reports whether a task's plans are shown by the apply step.
func deferReview(p task.Params) bool {
	// Drift comes from the plan's JSON form at plan time (drift.go).
	return p.EffectiveApproval() == task.ApprovalNone && p.EffectiveAction() != task.ActionPlan && !p.DetectDrift
}

// deferReview records the saved plan's digest and counts, and marks the plan
// as waiting to be shown for review.
func (s *stepRun) deferReview(out *PlanOutput) error {
	p := s.paths
	raw, err := os.ReadFile(p.planFile)
	if err != nil {
		return transientError("reading the saved plan", err)
	}
	out.Digest = digestOf(raw)
	out.Summary = s.ui.planSummary()
	if err := os.WriteFile(p.reviewMark, []byte(out.Digest), 0o600); err != nil {
		return transientError("marking the plan for review", err)
	}
	return nil
}

// pendingReview is a deferred review in flight.
type pendingReview struct {
	done chan error
}

// wait returns once the review is stored (or failed); nil waits for
// nothing.
func (r *pendingReview) wait() error {
	if r == nil {
		return nil
	}
	return <-r.done
}

// startReview starts showing the marked plan for review, beside whatever
// the step runs next, and returns nil when no plan is marked. It shows a
// hard link to the plan file (a copy where links fail), so the apply may
// remove the plan meanwhile; the link goes when the review ends.
func (s *stepRun) startReview(ctx context.Context, tfPath string) *pendingReview {
	p := s.paths
	mark, err := os.ReadFile(p.reviewMark)
	if err != nil {
		return nil
	}
	digest := strings.TrimSpace(string(mark))
	_ = os.Remove(p.reviewFile)
	if err := os.Link(p.planFile, p.reviewFile); err != nil {
		if err := copyFile(p.planFile, p.reviewFile, 0o600); err != nil {
			s.book.runner(task.LevelWarn, "the plan could not be kept for review: %v", err)
			_ = os.Remove(p.reviewMark)
			return nil
		}
	}
	tf, err := s.newTerraform(p.config, tfPath)
	if err != nil {
		_ = os.Remove(p.reviewFile)
		s.book.runner(task.LevelWarn, "the plan could not be kept for review: %v", s.masker.String(firstLine(err.Error())))
		return nil
	}
	r := &pendingReview{done: make(chan error, 1)}
	go func() {
		defer os.Remove(p.reviewFile)
		if b, err := os.ReadFile(p.reviewFile); err != nil || digestOf(b) != digest {
			r.done <- errors.New("the plan file changed since it was planned")
			return
		}
		_, _, err := s.showPlan(ctx, tf, p.reviewFile, digest, false, false)
		if err == nil {
			_ = os.Remove(p.reviewMark)
			s.book.runner(task.LevelInfo, "plan %s kept for review", short(digest))
		}
		r.done <- err
	}()
	return r
}

// endReview waits for a deferred review and logs its failure: nobody waits
// on the plan, so the task goes on.
func (s *stepRun) endReview(r *pendingReview) {
	if err := r.wait(); err != nil && !errors.Is(err, context.Canceled) {
		s.book.runner(task.LevelWarn, "the plan could not be kept for review: %v", s.masker.String(firstLine(err.Error())))
	}
}

// reviewLeftOver shows a plan marked for review that no apply showed (the
// task ended first), within a bounded time. Cleanup calls it.
func (s *stepRun) reviewLeftOver(ctx context.Context) {
	p := s.paths
	if _, err := os.Stat(p.reviewMark); err != nil {
		return
	}
	if _, err := os.Stat(p.planFile); err != nil {
		return
	}
	tfPath, err := s.terraformPath(ctx)
	if err != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.endReview(s.startReview(rctx, tfPath))
}

// newTerraform is a terraform-exec handle of its own (not the task's
// cached one), set up as terraform() sets that one: for a command that runs
// beside another of the step.
func (s *stepRun) newTerraform(dir, execPath string) (*tfexec.Terraform, error) {
	run, err := s.sandboxed(dir, execPath)
	if err != nil {
		return nil, err
	}
	tf, err := tfexec.NewTerraform(dir, run)
	if err != nil {
		return nil, internalErrorf("preparing terraform: %v", err)
	}
	// Its own diagnostics reader: the other command's stderr feeds the
	// step's.
	if err := s.setUpTerraform(tf, execPath, &textDiagnostics{tr: newUITracker()}); err != nil {
		return nil, err
	}
	return tf, nil
}
