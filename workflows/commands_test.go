package workflows

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"
)

// The SDK's replayer matches each command of the workflow code with the
// history's by kind and ID (an activity's type, a timer's ID), not by its
// options: a changed heartbeat timeout, retry policy, task queue or timer
// duration on a recorded path replays green, and only the workers running
// both versions side by side would notice. commandRecorder closes that gap:
// while a history replays, it records the options of each activity the
// code schedules and the duration of each timer it starts, and
// checkCommands compares them, in order, with the ActivityTaskScheduled and
// TimerStarted events of the history.

// cmdSeen is what the code asked of one activity or timer.
type cmdSeen struct {
	activity string // activity type; "" for a timer
	opts     workflow.ActivityOptions
	timer    time.Duration
}

type commandRecorder struct {
	interceptor.WorkerInterceptorBase
	got []cmdSeen
}

func (r *commandRecorder) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &recorderInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, r: r}
}

type recorderInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	r *commandRecorder
}

func (i *recorderInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&recorderOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, r: i.r})
}

type recorderOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	r *commandRecorder
}

func (o *recorderOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.r.got = append(o.r.got, cmdSeen{activity: activityType, opts: workflow.GetActivityOptions(ctx)})
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (o *recorderOutbound) NewTimer(ctx workflow.Context, d time.Duration) workflow.Future {
	o.r.got = append(o.r.got, cmdSeen{timer: d})
	return o.Next.NewTimer(ctx, d)
}

func (o *recorderOutbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	o.r.got = append(o.r.got, cmdSeen{timer: d})
	return o.Next.NewTimerWithOptions(ctx, d, opts)
}

func (o *recorderOutbound) Sleep(ctx workflow.Context, d time.Duration) error {
	o.r.got = append(o.r.got, cmdSeen{timer: d})
	return o.Next.Sleep(ctx, d)
}

// checkCommands compares what the recorder saw with the history in path;
// it returns the differences.
func checkCommands(path string, got []cmdSeen) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var h historypb.History
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &h); err != nil {
		return nil, err
	}
	var want []*historypb.HistoryEvent
	for _, e := range h.GetEvents() {
		if e.GetActivityTaskScheduledEventAttributes() != nil || e.GetTimerStartedEventAttributes() != nil {
			want = append(want, e)
		}
	}
	var diffs []string
	if len(got) < len(want) {
		return []string{fmt.Sprintf("the code cmdSeen %d activities and timers, the history %d", len(got), len(want))}, nil
	}
	// The code may schedule more than the history holds: the replay runs
	// the workflow on past the history's last event only when it ended
	// open, and then its last commands are not in it.
	for i, e := range want {
		g := got[i]
		if t := e.GetTimerStartedEventAttributes(); t != nil {
			if g.activity != "" {
				diffs = append(diffs, fmt.Sprintf("command %d: the history starts a timer, the code schedules activity %s", i, g.activity))
			} else if d := t.GetStartToFireTimeout().AsDuration(); d != g.timer {
				diffs = append(diffs, fmt.Sprintf("command %d: timer of %s in the history, %s in the code", i, d, g.timer))
			}
			continue
		}
		a := e.GetActivityTaskScheduledEventAttributes()
		if g.activity != a.GetActivityType().GetName() {
			diffs = append(diffs, fmt.Sprintf("command %d: activity %s in the history, %q in the code", i, a.GetActivityType().GetName(), g.activity))
			continue
		}
		name := g.activity
		check := func(what string, code, hist time.Duration) {
			// Zero in the code: the server filled it in.
			if code != 0 && code != hist {
				diffs = append(diffs, fmt.Sprintf("command %d (%s): %s %s in the history, %s in the code", i, name, what, hist, code))
			}
		}
		if q := g.opts.TaskQueue; q != "" && q != a.GetTaskQueue().GetName() {
			diffs = append(diffs, fmt.Sprintf("command %d (%s): task queue %s in the history, %s in the code", i, name, a.GetTaskQueue().GetName(), q))
		}
		check("schedule-to-close timeout", g.opts.ScheduleToCloseTimeout, a.GetScheduleToCloseTimeout().AsDuration())
		check("schedule-to-start timeout", g.opts.ScheduleToStartTimeout, a.GetScheduleToStartTimeout().AsDuration())
		check("start-to-close timeout", g.opts.StartToCloseTimeout, a.GetStartToCloseTimeout().AsDuration())
		if hb := a.GetHeartbeatTimeout().AsDuration(); g.opts.HeartbeatTimeout != hb {
			diffs = append(diffs, fmt.Sprintf("command %d (%s): heartbeat timeout %s in the history, %s in the code", i, name, hb, g.opts.HeartbeatTimeout))
		}
		if rp := g.opts.RetryPolicy; rp != nil {
			hp := a.GetRetryPolicy()
			hist := temporal.RetryPolicy{InitialInterval: hp.GetInitialInterval().AsDuration(), BackoffCoefficient: hp.GetBackoffCoefficient(),
				MaximumInterval: hp.GetMaximumInterval().AsDuration(), MaximumAttempts: hp.GetMaximumAttempts(), NonRetryableErrorTypes: hp.GetNonRetryableErrorTypes()}
			code := *rp
			// The server fills in what the code leaves at zero.
			if code.InitialInterval == 0 {
				code.InitialInterval = hist.InitialInterval
			}
			if code.BackoffCoefficient == 0 {
				code.BackoffCoefficient = hist.BackoffCoefficient
			}
			if code.MaximumInterval == 0 {
				code.MaximumInterval = hist.MaximumInterval
			}
			if code.InitialInterval != hist.InitialInterval || code.BackoffCoefficient != hist.BackoffCoefficient ||
				code.MaximumInterval != hist.MaximumInterval || code.MaximumAttempts != hist.MaximumAttempts ||
				!slices.Equal(code.NonRetryableErrorTypes, hist.NonRetryableErrorTypes) && !(len(code.NonRetryableErrorTypes) == 0 && len(hist.NonRetryableErrorTypes) == 0) {
				diffs = append(diffs, fmt.Sprintf("command %d (%s): retry policy %+v in the history, %+v in the code", i, name, hist, *rp))
			}
		}
	}
	return diffs, nil
}

// knownDrift are option changes made on recorded paths without a version,
// before this check existed, each with why it was harmless: options apply
// only to the activities scheduled after a deploy, and replay never
// compares them. The check ignores them in the histories they name, and
// fails when one no longer matches any difference (a stale entry).
var knownDrift = []struct {
	prefix, diff, why string
}{
	{"v1-", "schedule-to-start timeout 2m0s in the history, 15s in the code",
		"5a40b67 (a crashed runner's steps resume on another host): a pinned host step waits 15 s for its host, not 2 min"},
	{"v1-", "heartbeat timeout 20s in the history, 10s in the code",
		"5a40b67: host steps heartbeat within 10 s, so a dead host is noticed sooner"},
	{"v4-", "(terratask.Claim): heartbeat timeout 10s in the history, 5s in the code",
		"ef94db8 (issue 27, takeover sooner): the claim's heartbeat timeout 5 s"},
}

// unexplained returns the diffs of history file name that knownDrift does
// not explain, and marks the entries that explained one in used.
func unexplained(name string, diffs []string, used map[int]bool) []string {
	var out []string
	for _, d := range diffs {
		known := false
		for i, k := range knownDrift {
			if strings.HasPrefix(name, k.prefix) && strings.Contains(d, k.diff) {
				known, used[i] = true, true
			}
		}
		if !known {
			out = append(out, d)
		}
	}
	return out
}
