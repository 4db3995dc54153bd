package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/internal/watchdog"
	"github.com/terratask/terratask/task"
)

// Heartbeats of runner steps.
//
// The SDK's activity.RecordHeartbeat gives each heartbeat RPC the heartbeat
// throttle interval as its deadline (runners had capped it at 1 s so that
// cancels were quick) and, when the RPC fails for any reason it deems
// transient (a deadline exceeded on a loaded machine, a reset stream, an
// unavailable frontend), cancels the activity's context as though the
// server had timed the attempt out (go.temporal.io/sdk v1.50.0
// internal/internal_task_handlers.go, temporalInvoker.internalHeartBeat;
// serviceerror.DeadlineExceeded has no GRPCStatus, so retry.IsRetryable
// sees codes.Unknown, a "retryable" code). A second's hiccup of the control
// plane then stopped Terraform mid-apply, the step failed with "context
// canceled", and five such attempts failed the task (code internal).
//
// So a step sends its heartbeats itself (Runner.Heartbeat, one RPC at a
// time, bounded by the heartbeat timeout) and acts only on what the server
// answers:
//   - the server asks the step to stop (its cancel was requested, it was
//     paused or reset) or no longer knows the attempt (it timed out, the
//     workflow is gone): the step's context ends with that answer as its
//     cause, so Terraform gets SIGINT at once, and the SDK hears the answer
//     too (one SDK heartbeat), so a cancel is reported as a cancellation;
//   - a failed RPC is tried again at the next tick while Terraform runs on.
//     Only when none has reached the server for lostAfter (twice the
//     heartbeat timeout: by then the server has timed the attempt out and
//     retries it) does the step stop, and fail retryably: like a lost host.
//
// Heartbeats go on while Terraform stops, so a graceful stop that takes
// longer than the heartbeat timeout keeps its attempt.

// heartbeatTimeoutDefault bounds a heartbeat RPC of an activity without a
// heartbeat timeout.
const heartbeatTimeoutDefault = 10 * time.Second

// stepStopped is the cause of a step context this package ended itself.
type stepStopped struct {
	reason string
	err    error
}

func (e *stepStopped) Error() string { return e.reason + ": " + e.err.Error() }
func (e *stepStopped) Unwrap() error { return e.err }

// heartbeats is a step's heartbeat state.
type heartbeats struct {
	token     []byte
	timeout   time.Duration // of one RPC
	lostAfter time.Duration // 0: never
	// ctx bounds the RPCs: it ends when the step finishes, not when the
	// step's context does.
	ctx    context.Context
	cancel context.CancelFunc
	busy   atomic.Bool
	wg     sync.WaitGroup

	mu      sync.Mutex
	lastOK  time.Time
	failing bool
	told    bool // the SDK heard the server's answer
}

func (s *stepRun) startHeartbeats(ctx context.Context) {
	info := activity.GetInfo(ctx)
	h := &s.hb
	h.token = info.TaskToken
	h.timeout = info.HeartbeatTimeout
	if h.timeout <= 0 {
		h.timeout = heartbeatTimeoutDefault
	}
	h.lostAfter = 2 * info.HeartbeatTimeout
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.lastOK = time.Now() // the server just handed the attempt out
}

// stopHeartbeats ends the RPC in flight and waits for it.
func (s *stepRun) stopHeartbeats() {
	if s.hb.cancel != nil {
		s.hb.cancel()
	}
	s.hb.wg.Wait()
}

// heartbeat sends one heartbeat with p, unless one is in flight. Without
// Runner.Heartbeat it falls back to the SDK's (throttled) heartbeat.
func (s *stepRun) heartbeat(ctx context.Context, p task.Progress) {
	if s.r.Heartbeat == nil {
		activity.RecordHeartbeat(ctx, p)
		s.renewLock(ctx)
		return
	}
	if !s.hb.busy.CompareAndSwap(false, true) {
		return
	}
	s.hb.wg.Add(1)
	go func() {
		defer s.hb.wg.Done()
		defer s.hb.busy.Store(false)
		sent := watchdog.Now()
		rctx, cancel := context.WithTimeout(s.hb.ctx, s.hb.timeout)
		err := s.r.Heartbeat(rctx, s.hb.token, p)
		cancel()
		if s.hb.ctx.Err() != nil {
			return // the step is finishing
		}
		if err == nil || temporal.IsCanceledError(err) {
			// Temporal counts the attempt as alive: so may its state
			// lock, and the watchdog.
			s.renewLease(sent, s.renewLock(s.hb.ctx))
		}
		s.heard(ctx, p, err, time.Now())
	}()
}

// heard acts on a heartbeat's outcome (see the comment at the top).
func (s *stepRun) heard(ctx context.Context, p task.Progress, err error, now time.Time) {
	log := s.r.logger().With(zap.String("task", s.in.Task.ID), zap.String("step", string(s.step)))
	h := &s.hb
	h.mu.Lock()
	lastOK := h.lastOK
	h.mu.Unlock()
	switch judgeHeartbeat(err, now, lastOK, h.lostAfter) {
	case heartbeatOK:
		h.mu.Lock()
		recovered := h.failing
		h.lastOK, h.failing = now, false
		h.mu.Unlock()
		if recovered {
			log.Info("heartbeats reach Temporal again")
		}
	case heartbeatStop:
		cause := err
		if !temporal.IsCanceledError(err) {
			cause = &stepStopped{reason: "Temporal no longer runs this attempt", err: err}
		}
		s.stop(cause)
		h.mu.Lock()
		tell := !h.told
		h.told = true
		h.mu.Unlock()
		if tell {
			// The SDK asks too and ends its context with the same
			// answer, so the worker reports a cancel as one.
			activity.RecordHeartbeat(ctx, p)
		}
	case heartbeatRetry:
		h.mu.Lock()
		h.failing = true
		h.mu.Unlock()
		log.Warn("heartbeat did not reach Temporal; Terraform runs on and the next tick tries again",
			zap.Duration("since_last_heartbeat", now.Sub(lastOK)), zap.Error(err))
	case heartbeatLost:
		if s.ctx.Err() != nil {
			return // already stopping
		}
		since := now.Sub(lastOK).Round(time.Second)
		s.book.runner(task.LevelWarn, "no heartbeat reached Temporal for %s (%v): stopping Terraform, the attempt will be retried", since, err)
		s.stop(&stepStopped{reason: fmt.Sprintf("no heartbeat reached Temporal for %s", since), err: err})
	}
}

type heartbeatVerdict int

const (
	heartbeatOK    heartbeatVerdict = iota
	heartbeatStop                   // the server's answer: stop
	heartbeatRetry                  // a failed RPC: try again at the next tick
	heartbeatLost                   // failed for too long: stop
)

// judgeHeartbeat classifies a heartbeat's outcome. The server's answers
// mirror what the SDK cancels an activity for (internalHeartBeat); every
// other error is the RPC's, not the server's verdict.
func judgeHeartbeat(err error, now, lastOK time.Time, lostAfter time.Duration) heartbeatVerdict {
	var notFound *serviceerror.NotFound
	var nsNotFound *serviceerror.NamespaceNotFound
	var nsInactive *serviceerror.NamespaceNotActive
	switch {
	case err == nil:
		return heartbeatOK
	case temporal.IsCanceledError(err),
		errors.Is(err, activity.ErrActivityPaused), errors.Is(err, activity.ErrActivityReset),
		errors.As(err, &notFound), errors.As(err, &nsNotFound), errors.As(err, &nsInactive):
		return heartbeatStop
	case lostAfter > 0 && now.Sub(lastOK) >= lostAfter:
		return heartbeatLost
	default:
		return heartbeatRetry
	}
}
