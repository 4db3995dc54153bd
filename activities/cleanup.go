package activities

import (
	"context"
	"errors"
	"os"
)

// Cleanup removes the task's work dir, keeping its workspace state. It first
// re-sends any log lines still only in the dir's spools; if that fails it
// keeps the dir and returns a retryable error, so no line is lost. It is
// idempotent.
func (r *Runner) Cleanup(ctx context.Context, in StepInput) (err error) {
	s, err := r.begin(ctx, in, stepCleanup, false)
	ctx = s.ctx
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return err
	}
	s.stopTaskLeftovers()
	s.reviewLeftOver(ctx)
	return r.removeWorkDir(ctx, in.Task.ID, s.paths)
}

// removeWorkDir forgets the task in this process and removes its work dir,
// after re-sending the log lines still in its spools.
func (r *Runner) removeWorkDir(ctx context.Context, taskID string, p taskPaths) error {
	r.forgetTerraform(taskID)
	r.st().mu.Lock()
	delete(r.st().made, taskID)
	delete(r.st().dirty, taskID)
	r.st().mu.Unlock()
	if _, err := os.Stat(p.work); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := recoverSpools(ctx, r.Logs, p.private, r.spoolBusy); err != nil {
		return transientError("re-sending spooled logs before cleanup", err)
	}
	if err := os.RemoveAll(p.work); err != nil {
		return transientError("removing the work dir", err)
	}
	return nil
}
