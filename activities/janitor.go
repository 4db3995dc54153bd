package activities

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The janitor: what a host leaves behind when a task moves on without it.
//
// A task's work dir is removed by its Cleanup activity on the host that
// last ran it. A host that crashed, froze past its lease or was cut off
// never gets that call: its work dir (configuration, saved plan, the log
// spool of the interrupted attempt, errored.tfstate) stays. Sweep, run when
// a runner starts and then periodically (Janitor):
//   - re-sends every spooled log line of every task in the data dir, in its
//     own stream (run, step and attempt), so what a crashed attempt logged
//     before the crash reaches the API even if the host never runs that
//     task again (appending is idempotent: nothing is doubled);
//   - removes the work dirs of tasks that have ended (TaskEnded), unless a
//     step of the task runs in this process;
//   - removes sandbox dirs of steps that no longer run in this process.
//
// (An attempt whose lease expired spools nothing: see logBook.divert.)

// taskFile, in a work dir's private dir, names the task's org and ID, for
// the janitor (written when the work dir is made).
const taskFile = "task"

// SweepResult is what one Sweep did.
type SweepResult struct {
	Resent, Removed, Sandboxes int
}

// writeTaskFile records the task's org and ID in its private dir.
func writeTaskFile(priv, org, id string) error {
	return os.WriteFile(filepath.Join(priv, taskFile), []byte(org+"\n"+id+"\n"), 0o600)
}

func readTaskFile(priv string) (org, id string, ok bool) {
	b, err := os.ReadFile(filepath.Join(priv, taskFile))
	if err != nil {
		return "", "", false
	}
	f := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(f) != 2 || f[1] == "" {
		return "", "", false
	}
	return f[0], f[1], true
}

// Sweep re-sends spooled logs and removes what ended tasks left in r's
// data dir (see above). Errors of one dir do not stop it. (Not a method:
// every exported method of Runner is an activity.)
func Sweep(ctx context.Context, r *Runner) (SweepResult, error) {
	var res SweepResult
	var errs []error
	ents, err := os.ReadDir(filepath.Join(r.dataDir(), "work"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	for _, e := range ents {
		if !e.IsDir() || ctx.Err() != nil {
			continue
		}
		priv := filepath.Join(r.dataDir(), "work", e.Name(), ".terratask")
		if r.Logs != nil {
			n, err := recoverSpools(ctx, r.Logs, priv, r.spoolBusy)
			res.Resent += n
			if err != nil {
				errs = append(errs, err)
				continue // keep the dir: its spools are not sent yet
			}
		}
		org, id, ok := readTaskFile(priv)
		if !ok || r.TaskEnded == nil || r.running(id) {
			continue
		}
		ended, err := r.TaskEnded(ctx, org, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ended || r.running(id) {
			continue
		}
		p, err := r.paths(id)
		if err != nil {
			continue
		}
		if err := r.removeWorkDir(ctx, id, p); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Removed++
	}
	// Sandbox dirs of steps that do not run here (a crashed process's).
	sbs, _ := os.ReadDir(filepath.Join(r.dataDir(), "sandbox"))
	for _, e := range sbs {
		r.st().mu.Lock()
		live := r.st().execs[e.Name()]
		r.st().mu.Unlock()
		if live {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < time.Minute {
			continue // made this minute: a step may be starting
		}
		if os.RemoveAll(filepath.Join(r.dataDir(), "sandbox", e.Name())) == nil {
			res.Sandboxes++
		}
	}
	return res, errors.Join(errs...)
}

// running reports whether a step of the task runs in this process.
func (r *Runner) running(taskID string) bool {
	r.st().mu.Lock()
	defer r.st().mu.Unlock()
	return r.st().active[taskID] > 0
}

// Janitor sweeps r's data dir at once and then every `every` until ctx
// ends.
func Janitor(ctx context.Context, r *Runner, every time.Duration) {
	for {
		res, err := Sweep(ctx, r)
		if err != nil && ctx.Err() == nil {
			r.logger().Warn("janitor: some of what ended tasks left could not be handled; next sweep tries again", zap.Error(err))
		}
		if res != (SweepResult{}) {
			r.logger().Info("janitor: swept what tasks that moved on left", zap.Int("log_entries_resent", res.Resent),
				zap.Int("work_dirs_removed", res.Removed), zap.Int("sandbox_dirs_removed", res.Sandboxes))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
