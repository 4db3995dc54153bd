package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap/zaptest"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

func TestJudgeHeartbeat(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	transient := serviceerror.NewDeadlineExceeded("context deadline exceeded")
	for _, c := range []struct {
		name      string
		err       error
		since     time.Duration
		lostAfter time.Duration
		want      heartbeatVerdict
	}{
		{"ok", nil, time.Hour, 20 * time.Second, heartbeatOK},
		{"cancel requested", temporal.NewCanceledError(), 0, 20 * time.Second, heartbeatStop},
		{"attempt unknown", serviceerror.NewNotFound("invalid activityID or activity already timed out"), 0, 20 * time.Second, heartbeatStop},
		{"paused", activity.ErrActivityPaused, 0, 20 * time.Second, heartbeatStop},
		{"reset", activity.ErrActivityReset, 0, 20 * time.Second, heartbeatStop},
		{"deadline exceeded", transient, 19 * time.Second, 20 * time.Second, heartbeatRetry},
		{"stream reset", errors.New("stream terminated by RST_STREAM with error code: CANCEL"), time.Second, 20 * time.Second, heartbeatRetry},
		{"unavailable", serviceerror.NewUnavailable("connection refused"), 5 * time.Second, 20 * time.Second, heartbeatRetry},
		{"silent too long", transient, 20 * time.Second, 20 * time.Second, heartbeatLost},
		{"no heartbeat timeout", transient, time.Hour, 0, heartbeatRetry},
	} {
		if got := judgeHeartbeat(c.err, t0.Add(c.since), t0, c.lostAfter); got != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, got, c.want)
		}
	}
}

// slowApplyTask plans the slow module, whose apply sleeps secs.
func (f *fixture) slowApplyTask(secs string) StepInput {
	in := f.newTask(task.Params{Module: "slow", Variables: map[string]any{"secs": secs}}, task.Secrets{})
	f.upTo(&in, true)
	return in
}

// TestFailedHeartbeatsNeverStopAStep: every heartbeat RPC fails as under
// load (deadline exceeded, a reset stream); Terraform runs to its end.
func TestFailedHeartbeatsNeverStopAStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.slowApplyTask("1.5")
	var calls atomic.Int64
	f.r.Heartbeat = func(context.Context, []byte, ...any) error {
		if calls.Add(1)%2 == 0 {
			return errors.New("stream terminated by RST_STREAM with error code: CANCEL")
		}
		return serviceerror.NewDeadlineExceeded("context deadline exceeded")
	}
	var out ApplyOutput
	f.mustExec("Apply", in, &out)
	if out.ChangesDone != 1 {
		t.Fatalf("changes done %d, want 1", out.ChangesDone)
	}
	if n := calls.Load(); n < 3 {
		t.Fatalf("%d heartbeat RPCs during a 1.5 s apply", n)
	}
	if logs := f.sink.text(in.Task.ID); strings.Contains(logs, "Interrupt") || !strings.Contains(logs, "finished") {
		t.Fatalf("the apply was interrupted:\n%s", logs)
	}
}

// TestServerAnswersStopAStep: once the server answers that the attempt must
// stop, Terraform gets SIGINT at once and nothing it started survives; a
// requested cancel ends the step as cancelled, an attempt the server no
// longer knows as a retryable failure.
func TestServerAnswersStopAStep(t *testing.T) {
	t.Parallel()
	for i, c := range []struct {
		name   string
		answer error
		check  func(t *testing.T, err error)
	}{
		{"cancel requested", temporal.NewCanceledError(), func(t *testing.T, err error) {
			var ce *temporal.CanceledError
			if !errors.As(err, &ce) && !strings.Contains(fmt.Sprint(err), context.Canceled.Error()) {
				t.Errorf("err = %v (%T), want cancelled", err, err)
			}
		}},
		{"attempt timed out", serviceerror.NewNotFound("invalid activityID or activity already timed out"), func(t *testing.T, err error) {
			appErr, te := taskErrorOf(t, err)
			if appErr.NonRetryable() || te.Code != task.CodeInternal || !strings.Contains(te.Message, "stopped before it finished: Temporal no longer runs this attempt") {
				t.Errorf("err = %v (non-retryable %v), task error %+v", err, appErr.NonRetryable(), te)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			// Unique per subtest: they run at once, and each answers by the
			// sight of its own provisioner's sleep.
			secs := fmt.Sprintf("41.%d%s", i+1, time.Now().Format("150405"))
			in := f.slowApplyTask(secs)
			var answered atomic.Int64 // unix nanos of the first answer
			f.r.Heartbeat = func(context.Context, []byte, ...any) error {
				if len(procsWith("sleep "+secs)) == 0 {
					return nil
				}
				answered.CompareAndSwap(0, time.Now().UnixNano())
				return c.answer
			}
			err := f.exec(nil, "Apply", in, nil)
			if answered.Load() == 0 {
				t.Fatalf("the provisioner never ran: %v\n%s", err, f.sink.text(in.Task.ID))
			}
			if d := time.Since(time.Unix(0, answered.Load())); d > 8*time.Second {
				t.Errorf("Apply took %v to return after the answer", d)
			}
			c.check(t, err)
			if left := procsWith(secs); len(left) > 0 {
				t.Errorf("processes survived: %v", left)
			}
			if logs := f.sink.text(in.Task.ID); !strings.Contains(logs, "Interrupt received") {
				t.Errorf("Terraform was not interrupted:\n%s", logs)
			}
		})
	}
}

// TestLongSilenceStopsAStep: failed heartbeats are tried again until none
// has reached the server for lostAfter; then the step stops, as the server
// has timed the attempt out by then.
func TestLongSilenceStopsAStep(t *testing.T) {
	r := &Runner{Logger: zaptest.NewLogger(t)}
	sink := newMemSink()
	s := &stepRun{r: r, step: task.StepApplying, in: StepInput{Task: task.Input{ID: "task-silent"}}}
	s.book = newLogBook(sink, "task-silent", "run1/applying/attempt1", "", secret.NewMasker(task.Secrets{}), nil, r.logger())
	s.ctx, s.stop = context.WithCancelCause(context.Background())
	defer s.stop(nil)
	t0 := time.Now()
	s.hb.lastOK, s.hb.lostAfter = t0, 20*time.Second
	transient := serviceerror.NewDeadlineExceeded("context deadline exceeded")

	s.heard(context.Background(), task.Progress{}, transient, t0.Add(9*time.Second))
	s.heard(context.Background(), task.Progress{}, nil, t0.Add(12*time.Second)) // lastOK moves on
	s.heard(context.Background(), task.Progress{}, transient, t0.Add(31*time.Second))
	if s.ctx.Err() != nil {
		t.Fatalf("step stopped %s after the last heartbeat: %v", 19*time.Second, context.Cause(s.ctx))
	}
	s.heard(context.Background(), task.Progress{}, transient, t0.Add(32*time.Second))
	var stopped *stepStopped
	if !errors.As(context.Cause(s.ctx), &stopped) || !strings.Contains(stopped.Error(), "no heartbeat reached Temporal for 20s") {
		t.Fatalf("cause %v, want a stop after 20s without a heartbeat", context.Cause(s.ctx))
	}
	if err := s.book.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.heard(context.Background(), task.Progress{}, transient, t0.Add(34*time.Second)) // Terraform is still stopping
	if err := s.book.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logs := sink.text("task-silent"); strings.Count(logs, "stopping Terraform, the attempt will be retried") != 1 {
		t.Fatalf("want one line that says why the step stopped:\n%s", logs)
	}
}
