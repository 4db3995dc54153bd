package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/internal/watchdog"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// A step attempt's lease.
//
// Temporal counts a step attempt as alive until its heartbeat timeout
// passes without a heartbeat; then it hands the work to another attempt,
// usually on another host (the workflow ends the block on a heartbeat
// timeout). So an attempt may run Terraform only within heartbeat timeout
// of its last heartbeat that reached Temporal: that is its lease.
//
//   - Before anything else, a step sends one heartbeat and waits for the
//     answer (checkAttempt). An attempt Temporal no longer knows (it timed
//     out while its host was frozen, or its poll was answered by a host
//     that then froze) stops there: it runs no Terraform, writes nothing to
//     the task's log and leaves the work dir alone.
//   - Every heartbeat that reaches Temporal (a cancel request is an answer
//     too) renews the lease to the time it was sent plus the heartbeat
//     timeout, less leaseMargin; the runner tells its watchdog (package
//     watchdog), a separate process, which kills the step's sandboxes when
//     the lease runs out. A runner that stalls renews nothing, so its
//     Terraform dies leaseMargin before Temporal could retry the attempt.
//   - While the step's command holds the workspace's state lock on the
//     server (whose lease the proxy renews at every tick, statelease.go),
//     the lease also ends leaseMargin before that lock's lease would.
//
// Without a sandbox (isolation off) or a watchdog there is nothing to kill
// a stalled runner's Terraform: the stale-attempt check still runs.

// leaseMargin is how long before Temporal (or the state server) could give
// the work away the watchdog kills a step's commands.
const leaseMargin = 2 * time.Second

// errLeaseExpired is the cause of a step whose commands the watchdog killed.
var errLeaseExpired = errors.New("lease expired")

// errStaleAttempt is the cause of a step attempt Temporal no longer runs.
var errStaleAttempt = errors.New("Temporal no longer runs this attempt")

// checkAttempt sends the step's first heartbeat and waits for Temporal's
// answer. It returns when the heartbeat was sent (watchdog.Now's clock; 0
// when the attempt has no heartbeat timeout or the runner cannot send its
// own heartbeats), and the answer when it is a cancel request. An attempt
// Temporal no longer knows is an error wrapping errStaleAttempt; a
// heartbeat that gets no answer is not (the step goes on).
func (r *Runner) checkAttempt(ctx context.Context, step task.Step) (sent int64, cancel error, err error) {
	info := activity.GetInfo(ctx)
	if r.Heartbeat == nil || info.HeartbeatTimeout <= 0 {
		return 0, nil, nil
	}
	sent = watchdog.Now()
	rctx, stop := context.WithTimeout(ctx, info.HeartbeatTimeout)
	err = r.Heartbeat(rctx, info.TaskToken, task.Progress{Step: step})
	stop()
	switch judgeHeartbeat(err, time.Now(), time.Now(), 0) {
	case heartbeatStop:
		if temporal.IsCanceledError(err) {
			return sent, err, nil
		}
		r.logger().Warn("a step attempt Temporal no longer runs arrived (its host was frozen or cut off meanwhile): it runs nothing",
			zap.String("task", info.WorkflowExecution.ID), zap.String("step", string(step)), zap.Int32("attempt", info.Attempt), zap.Error(err))
		return 0, nil, &stepStopped{reason: "stale attempt", err: fmt.Errorf("%w: %w", errStaleAttempt, err)}
	case heartbeatRetry:
		// No answer is no verdict: a slow or restarting frontend must not
		// stop a step. The attempt was handed out just now, so its lease
		// counts from before this heartbeat; the ticks go on asking.
		r.logger().Warn("could not check with Temporal that this attempt still runs; going on (the next heartbeat asks again)",
			zap.String("task", info.WorkflowExecution.ID), zap.String("step", string(step)), zap.Error(err))
	}
	return sent, nil, nil
}

// armLease starts the watchdog's watch of the step's sandboxes, with a
// lease from the heartbeat checkAttempt sent at sent. It reports whether
// the step runs under a lease.
func (s *stepRun) armLease(ctx context.Context, sent int64) error {
	r := s.r
	if r.Watchdog == nil || !r.Sandbox.Active() || sent == 0 {
		return nil
	}
	s.leaseTTL = int64(activity.GetInfo(ctx).HeartbeatTimeout - leaseMargin)
	if s.leaseTTL <= 0 {
		return nil
	}
	dir := r.sandboxDir(s.execID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return internalErrorf("preparing the step's sandbox dir: %v", err)
	}
	if err := r.Watchdog.Arm(s.execID, dir, sent+s.leaseTTL); err != nil {
		return transientError("arming the watchdog", err)
	}
	s.leased = true
	s.leaseFrom = sent
	s.leaseUntil.Store(sent + s.leaseTTL)
	return nil
}

// leaseHeld reports, right before the step sends its log lines, whether its
// lease still runs by the clock: a runner that was frozen (all of it, its
// watchdog too) may wake with a flush under way, and the watchdog may not
// yet have marked the lease lost. Lines sent while the lease runs come
// before any other attempt of the task; later ones are diverted.
func (s *stepRun) leaseHeld() bool {
	until := s.leaseUntil.Load()
	return until == 0 || watchdog.Now() < until && !s.leaseLost()
}

// renewLease moves the lease on after a heartbeat sent at sent reached
// Temporal; lockUntil, when not 0, is when the state lock's lease the step
// holds would end (watchdog.Now's clock).
func (s *stepRun) renewLease(sent, lockUntil int64) {
	if !s.leased {
		return
	}
	until := sent + s.leaseTTL
	if lockUntil != 0 && lockUntil < until {
		until = lockUntil
	}
	s.leaseUntil.Store(until)
	if err := s.r.Watchdog.Renew(s.execID, until); err != nil {
		s.r.logger().Error("renewing a step's lease with the watchdog", zap.String("task", s.in.Task.ID), zap.Error(err))
	}
}

// renewLock renews the lease of the state lock the step's command holds on
// the server (statelease.go), and returns when that lease would end for the
// watchdog (0 when the step holds no lock): leaseMargin before the server
// could hand the lock on, counted from the last renewal that reached it
// (or, before any did, from the step's start: the lock was taken later).
func (s *stepRun) renewLock(ctx context.Context) int64 {
	sent := watchdog.Now()
	held, err := s.renewStateLock(ctx)
	if !held {
		s.lockRenewed.Store(0)
		return 0
	}
	if err == nil {
		s.lockRenewed.Store(sent)
	} else {
		s.r.logger().Warn("renewing the state lock's lease failed; the next tick tries again",
			zap.String("task", s.in.Task.ID), zap.String("step", string(s.step)), zap.Error(err))
	}
	from := s.lockRenewed.Load()
	if from == 0 {
		from = s.leaseFrom
		s.lockRenewed.Store(from)
	}
	return from + int64(store.StateLockLease-leaseMargin)
}

// leaseLost reports whether the watchdog gave the step's lease up.
func (s *stepRun) leaseLost() bool {
	if !s.leased {
		return false
	}
	_, err := os.Stat(filepath.Join(s.r.sandboxDir(s.execID), watchdog.ExpiredFile))
	return err == nil
}

// disarmLease ends the watch (at finish, once the step's commands have
// ended) and reports whether the lease had expired, so the watchdog killed
// the step's commands.
func (s *stepRun) disarmLease() bool {
	if !s.leased {
		return false
	}
	lost := s.leaseLost()
	s.leased = false
	if derr := s.r.Watchdog.Disarm(s.execID); derr != nil {
		s.r.logger().Error("disarming the watchdog", zap.String("task", s.in.Task.ID), zap.Error(derr))
	}
	return lost
}

// attemptWait bounds how long a step waits for another step of its task
// that still runs in this process (one the watchdog is killing).
const attemptWait = 30 * time.Second

// enterTask makes the step the only one of its task running in this
// process: the workflow runs a task's steps one at a time, but an attempt
// given up (its lease expired while the runner was frozen) may still be
// stopping here when the task's next attempt arrives, and the two would
// share the task's work dir. The later one waits for the earlier to end,
// within attemptWait, else fails retryably. leaveTask ends it.
func (r *Runner) enterTask(ctx context.Context, taskID string) error {
	st := r.st()
	give := time.Now().Add(attemptWait)
	for {
		st.mu.Lock()
		if st.active[taskID] == 0 {
			st.active[taskID] = 1
			st.mu.Unlock()
			return nil
		}
		st.mu.Unlock()
		if time.Now().After(give) {
			return transientError("waiting for another attempt of the task on this host to end", errors.New("it still runs"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leaveTask ends what enterTask began.
func (s *stepRun) leaveTask() {
	if !s.counted {
		return
	}
	s.counted = false
	st := s.r.st()
	st.mu.Lock()
	delete(st.active, s.in.Task.ID)
	st.mu.Unlock()
}
