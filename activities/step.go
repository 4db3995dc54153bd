package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/internal/procgroup"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// flushTimeout bounds a flush made after the activity's context is done.
const flushTimeout = 30 * time.Second

// stepRun is one activity execution: its log stream, its secrets and the
// heartbeat loop that flushes logs and reports progress while it runs.
type stepRun struct {
	r       *Runner
	in      StepInput
	step    task.Step
	paths   taskPaths
	hasDir  bool // paths are valid and the private dir exists
	secrets task.Secrets
	masker  *secret.Masker
	book    *logBook
	ui      *uiTracker
	// textDiags reads diagnostics from stderr when there is no -json.
	textDiags *textDiagnostics
	// execID marks every process this step starts (see terraform.go).
	execID string
	// writingPlan lets the sandbox's engine write the plan file (savePlan).
	writingPlan bool
	// stopInterrupt stops the interrupt of the step's sandboxed engines at
	// the end of its context (nil without a sandbox).
	stopInterrupt func() bool
	// fence orders this attempt among the task's (see statebackend.go).
	fence int64
	// stale is set when Temporal no longer runs this attempt: the step did
	// nothing (lease.go). leased is set while the watchdog watches the
	// step's sandboxes, whose lease is leaseTTL (in ns) from a heartbeat.
	stale    bool
	counted  bool // holds the task on this host (enterTask)
	leased   bool
	leaseTTL int64
	// leaseFrom is when the heartbeat that began the lease was sent, and
	// lockRenewed when the last renewal of the step's state lock that
	// reached the server was (lease.go; watchdog.Now's clock).
	leaseFrom   int64
	lockRenewed atomic.Int64
	// leaseUntil is when the watchdog's lease of the step ends (the last
	// deadline given to it; watchdog.Now's clock); 0 when unleased.
	leaseUntil atomic.Int64
	// proxyBase is the step's route through the state proxy, and
	// closeProxy closes it (at finish); under mu.
	proxyBase  string
	closeProxy func()

	// credentialSets are the task's credential sets this step got, their
	// values in secrets (credentials.go): names and OIDC configuration.
	credentialSets []store.CredentialDelivery
	// oidcEnv is the environment of the step's OIDC tokens, oidcDirs
	// their directories and refreshers their renewals (oidctoken.go).
	oidcEnv    map[string]string
	oidcDirs   []string
	refreshers []*oidc.Refresher

	stopTick chan struct{}
	tickDone chan struct{}

	// procs follows the processes of the step's Terraform commands.
	procs *procgroup.Tracker

	flushing  atomic.Bool    // a tick's flush is in flight
	flushes   sync.WaitGroup // tick flushes
	reporting atomic.Bool    // a tick's progress report is in flight
	reports   sync.WaitGroup // tick progress reports

	mu       sync.Mutex
	reported task.Progress

	// started is when the step attempt began (step duration metric).
	started time.Time

	// ctx is the step's context: Terraform runs under it. It ends with the
	// activity's context, or when a heartbeat's answer (or a long silence
	// of the server) stops the step; never because one heartbeat failed
	// (heartbeat.go).
	ctx  context.Context
	stop context.CancelCauseFunc
	hb   heartbeats
}

// begin starts a step: it opens the task's secrets, sets up the log stream
// (re-sending what earlier streams of the task left in their spools) and
// starts the heartbeat loop. It always returns a stepRun, which the caller
// must finish, even with an error. The caller runs the step under s.ctx.
func (r *Runner) begin(ctx context.Context, in StepInput, step task.Step, spool bool) (*stepRun, error) {
	info := activity.GetInfo(ctx)
	attempt := int(info.Attempt)
	if attempt < 1 {
		attempt = 1
	}
	run := in.Run
	if run < 1 {
		run = 1
	}
	s := &stepRun{r: r, in: in, step: step, ui: newUITracker(), execID: newExecID(),
		masker: secret.NewMasker(task.Secrets{}), started: time.Now()}
	s.ctx, s.stop = context.WithCancelCause(ctx)
	// Before anything else: is the task this runner's org's, and does
	// Temporal still run this attempt?
	if in.Task.Org != r.Org {
		s.book = newLogBook(discardSink{}, in.Task.ID, "", "", s.masker, nil, r.logger())
		return s, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("runner %s belongs to org %q, not to the task's org %q: it runs nothing of another org", r.RunnerID, r.Org, in.Task.Org),
			ErrTypeWrongOrg, nil)
	}
	sent, cancelled, err := r.checkAttempt(ctx, step)
	if err == nil {
		err = r.enterTask(ctx, in.Task.ID)
		s.counted = err == nil
	}
	if err != nil {
		s.stale = errors.Is(err, errStaleAttempt)
		s.book = newLogBook(discardSink{}, in.Task.ID, "", "", s.masker, nil, r.logger())
		return s, err
	}
	if r.Sandbox.Active() {
		// terraform-exec's SIGINT stops at the sandbox's wrapper: pass it
		// on to the engines of the step (sandbox.Interrupt).
		dir := r.sandboxDir(s.execID)
		s.stopInterrupt = context.AfterFunc(s.ctx, func() { sandbox.Interrupt(dir) })
	}
	s.procs = procgroup.NewTracker(envExecID, s.execID)
	s.fence = fence(run, step, attempt)
	s.textDiags = &textDiagnostics{tr: s.ui}
	s.reported.Step = step
	stream := fmt.Sprintf("run%d/%s/attempt%d", run, step, attempt)
	base := map[string]any{"step": string(step), "attempt": attempt, "run": run}
	log := r.logger().With(zap.String("task", in.Task.ID), zap.String("stream", stream))

	var errs []error
	secrets, err := r.openSecrets(in.Task)
	if err == nil && usesCredentials(step) {
		// The task's credential sets, as they are now, beside its own
		// secrets: masked and passed on alike (credentials.go).
		secrets, s.credentialSets, err = r.withCredentials(ctx, in.Task, secrets)
	}
	if err != nil {
		errs = append(errs, err)
	} else {
		s.secrets = secrets
		s.masker = secret.NewMasker(secrets)
		if r.StateURL != "" && r.Secrets != nil {
			// The state credential is a secret too (under a name of its
			// own: the task's env may set TF_HTTP_PASSWORD).
			mask := secrets
			mask.Env = map[string]string{}
			for k, v := range secrets.Env {
				mask.Env[k] = v
			}
			mask.Env["\x00terratask state credential"] = s.stateCredential()
			s.masker = secret.NewMasker(mask)
		}
	}

	spoolDir := ""
	paths, perr := r.paths(in.Task.ID)
	if perr != nil {
		errs = append(errs, perr)
	} else {
		s.paths = paths
		if _, err := os.Stat(paths.private); errors.Is(err, os.ErrNotExist) && spool {
			r.st().mu.Lock()
			if len(r.st().made) >= maxCachedTF {
				r.st().made = map[string]bool{}
			}
			r.st().made[in.Task.ID] = true
			r.st().mu.Unlock()
		}
		if spool {
			_, statErr := os.Stat(paths.private)
			if err := mkdirPrivate(paths.work, paths.private); err != nil {
				log.Warn("cannot create the task's work dir; logs are kept in memory only", zap.Error(err))
			} else {
				s.hasDir = true
				spoolDir = paths.private
				if errors.Is(statErr, os.ErrNotExist) {
					// For the janitor (janitor.go).
					if err := writeTaskFile(paths.private, in.Task.Org, in.Task.ID); err != nil {
						log.Warn("cannot record the task in its work dir", zap.Error(err))
					}
				}
			}
		} else if fi, err := os.Stat(paths.private); err == nil && fi.IsDir() {
			s.hasDir = true
		}
	}
	if len(errs) == 0 && usesCredentials(step) {
		// The OIDC tokens of the task's credential sets (oidctoken.go),
		// masked like its secrets.
		tokens, err := s.startOIDC(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		if len(tokens) > 0 {
			mask := s.secrets
			mask.Env = map[string]string{}
			for k, v := range s.secrets.Env {
				mask.Env[k] = v
			}
			if r.StateURL != "" && r.Secrets != nil {
				mask.Env["\x00terratask state credential"] = s.stateCredential()
			}
			for i, t := range tokens {
				mask.Env[fmt.Sprintf("\x00terratask oidc token %d", i)] = t
			}
			s.masker = secret.NewMasker(mask)
		}
	}
	if r.Logs == nil {
		errs = append(errs, internalErrorf("runner has no log sink"))
		s.book = newLogBook(discardSink{}, in.Task.ID, stream, "", s.masker, base, log)
	} else {
		s.book = newLogBook(r.Logs, in.Task.ID, stream, spoolDir, s.masker, base, log)
		s.book.live = s.leaseHeld
	}

	if len(s.credentialSets) > 0 {
		names := make([]string, len(s.credentialSets))
		for i, c := range s.credentialSets {
			names[i] = c.Name
		}
		s.book.runner(task.LevelInfo, "credential sets: %s", strings.Join(names, ", "))
	}

	if s.book.spoolFn != "" {
		r.st().mu.Lock()
		r.st().spools[s.book.spoolFn] = true
		r.st().mu.Unlock()
	}
	if s.hasDir && r.Logs != nil {
		if n, err := recoverSpools(ctx, r.Logs, paths.private, r.spoolBusy); err != nil {
			log.Warn("re-sending spooled logs failed; will retry at the next step", zap.Error(err))
		} else if n > 0 {
			log.Info("re-sent spooled log entries of earlier steps", zap.Int("entries", n))
		}
	}

	r.st().mu.Lock()
	r.st().execs[s.execID] = true
	r.st().mu.Unlock()

	s.startHeartbeats(ctx)
	if err := s.armLease(ctx, sent); err != nil {
		errs = append(errs, err)
	}
	if cancelled != nil {
		// Cancelled before it began: stop at once, as a tick would.
		s.heard(ctx, s.progress(), cancelled, time.Now())
	}
	s.stopTick, s.tickDone = make(chan struct{}), make(chan struct{})
	go s.tickLoop(ctx)

	if len(errs) > 0 {
		return s, errs[0]
	}
	return s, nil
}

func (r *Runner) openSecrets(in task.Input) (task.Secrets, error) {
	if in.SealedSecrets == "" {
		return task.Secrets{}, nil
	}
	if r.Secrets == nil {
		return task.Secrets{}, configErrorf("the task has secrets but this runner has no secret key")
	}
	s, err := r.Secrets.Open(in.SealedSecrets)
	if err != nil {
		return task.Secrets{}, configErrorf("cannot open the task's secrets: they are not sealed under the key this runner holds for org %s "+
			"(give the runner its org's key, `terratask keys org --org %s`; a schedule whose template's secrets were sealed before per-org keys "+
			"needs them sent again with PATCH /api/v1/schedules/{id})", in.Org, in.Org)
	}
	return s, nil
}

func mkdirPrivate(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func newExecID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tickLoop heartbeats, flushes logs, records process groups and reports
// progress every HeartbeatEvery until the step finishes.
func (s *stepRun) tickLoop(ctx context.Context) {
	defer close(s.tickDone)
	t := time.NewTicker(s.r.heartbeatEvery())
	defer t.Stop()
	for {
		select {
		case <-s.stopTick:
			return
		case <-t.C:
			s.tick(ctx)
		}
	}
}

func (s *stepRun) tick(ctx context.Context) {
	p := s.progress()
	s.heartbeat(ctx, p)

	s.procs.Scan()

	// A slow store must not delay heartbeats: the flush runs beside the
	// loop, one at a time; finish waits for it. An attempt whose lease the
	// watchdog gave up (while this runner was frozen) sends nothing more:
	// the task may have ended elsewhere (finish diverts what is left).
	if !s.leaseLost() && s.flushing.CompareAndSwap(false, true) {
		s.flushes.Add(1)
		go func() {
			defer s.flushes.Done()
			defer s.flushing.Store(false)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := s.book.flush(fctx); err != nil {
				s.r.logger().Warn("flushing task logs failed; will retry", zap.String("task", s.in.Task.ID), zap.Error(err))
			}
		}()
	}

	s.mu.Lock()
	changed := p != s.reported
	s.mu.Unlock()
	if !changed || s.r.Progress == nil || s.ctx.Err() != nil || !s.reporting.CompareAndSwap(false, true) {
		return
	}
	// Like flushes, a slow progress signal must not hold up the next
	// heartbeat.
	s.reports.Add(1)
	go func() {
		defer s.reports.Done()
		defer s.reporting.Store(false)
		info := activity.GetInfo(ctx)
		pctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		if err := s.r.Progress(pctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, p); err != nil {
			// Sent again at the next tick.
			s.r.logger().Debug("reporting progress failed", zap.String("task", s.in.Task.ID), zap.Error(err))
			return
		}
		s.mu.Lock()
		s.reported = p
		s.mu.Unlock()
	}()
}

func (s *stepRun) progress() task.Progress {
	planned, done := s.ui.counts()
	return task.Progress{Step: s.step, PlannedChanges: planned, ChangesDone: done}
}

// finish ends a step: it stops the heartbeat loop, makes sure no process of
// the step survives, records the outcome, flushes the logs with a context of
// its own (ctx may be cancelled) and turns err into the activity's error. A
// step that failed because ctx (the step's context) was cancelled returns
// ctx.Err() unchanged; one the runner stopped (heartbeat.go) returns a
// retryable error that says why.
func (s *stepRun) finish(ctx context.Context, err error) error {
	defer s.stop(context.Canceled)
	if s.tickDone == nil {
		// begin stopped before the step began (a stale attempt, or one
		// that could not be checked): nothing ran, nothing to record.
		s.stopOIDC()
		s.leaveTask()
		return toApplicationError(&stepError{code: task.CodeInternal, retryable: true, cause: err,
			msg: fmt.Sprintf("step %s did not start: %v", s.step, err)}, s.step, s.masker)
	}
	if s.stopInterrupt != nil {
		// Every command has ended: nothing is left to interrupt when the
		// step's context ends below.
		defer s.stopInterrupt()
	}
	close(s.stopTick)
	<-s.tickDone
	s.stopHeartbeats()
	s.flushes.Wait()
	s.reports.Wait()
	if err != nil || ctx.Err() != nil {
		// An interrupted or failed command may have left processes that
		// left its group: look everywhere.
		s.procs.Thorough()
		s.r.markDirty(s.in.Task.ID)
	}
	s.stopProcesses()
	s.stopOIDC()
	expired := s.disarmLease()
	if expired && err != nil && !errors.As(context.Cause(ctx), new(*stepStopped)) {
		// The watchdog killed the step's commands: say why.
		s.stop(&stepStopped{reason: "its lease expired (the runner renewed no heartbeat in time) and the watchdog killed its commands", err: errLeaseExpired})
	}
	s.removeSandbox()
	s.mu.Lock()
	if s.closeProxy != nil {
		s.closeProxy()
	}
	s.mu.Unlock()

	s.r.st().mu.Lock()
	delete(s.r.st().execs, s.execID)
	s.r.st().mu.Unlock()
	s.leaveTask()

	metrics.ObserveStep(s.step, outcome(ctx, err), time.Since(s.started))
	var out error
	var stopped *stepStopped
	switch {
	case err == nil:
		// Done, even if a cancel arrived meanwhile: the result is true.
	case ctx.Err() != nil && errors.As(context.Cause(ctx), &stopped):
		s.book.runner(task.LevelWarn, "step %s stopped: %v", s.step, stopped)
		out = toApplicationError(&stepError{code: task.CodeInternal, retryable: true, cause: stopped.err,
			msg: fmt.Sprintf("step %s stopped before it finished: %s", s.step, stopped.reason)}, s.step, s.masker)
	case ctx.Err() != nil:
		s.book.runner(task.LevelWarn, "step %s cancelled: %v", s.step, context.Cause(ctx))
		out = ctx.Err()
	case err != nil:
		out = toApplicationError(engineWording(err, s.in.Task.Params.EffectiveEngine()), s.step, s.masker)
		s.book.runner(task.LevelError, "step %s failed: %s", s.step, firstLine(err.Error()))
	}

	if expired {
		// The attempt was given up: another may have finished the task.
		if n := s.book.divert(); n > 0 {
			s.r.logger().Warn("the step's lease expired: its unsent output went to this log, not the task's",
				zap.String("task", s.in.Task.ID), zap.String("step", string(s.step)), zap.Int("entries", n))
		}
		s.deregisterSpool()
		return out
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if ferr := s.book.close(fctx); ferr != nil {
		// The spool keeps the lines; the next step or Cleanup re-sends them.
		s.r.logger().Warn("flushing task logs at step end failed", zap.String("task", s.in.Task.ID), zap.Error(ferr))
	}
	s.deregisterSpool()
	return out
}

// deregisterSpool tells recovery that the step's book is closed.
func (s *stepRun) deregisterSpool() {
	if s.book.spoolFn != "" {
		s.r.st().mu.Lock()
		delete(s.r.st().spools, s.book.spoolFn)
		s.r.st().mu.Unlock()
	}
}

// spoolBusy reports whether a book of this process has the spool open.
func (r *Runner) spoolBusy(path string) bool {
	r.st().mu.Lock()
	defer r.st().mu.Unlock()
	return r.st().spools[path]
}

// discardSink stands in for a missing sink so a misconfigured runner still
// fails cleanly.
type discardSink struct{}

func (discardSink) AppendLogs(context.Context, []store.LogEntry) error { return nil }
