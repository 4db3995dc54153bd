package workflows

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/common/retrypolicy"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/task"
)

// scheduled is an activity the workflow scheduled: its type, the options
// it was scheduled with and its input.
type scheduled struct {
	name string
	opts workflow.ActivityOptions
	in   activities.StepInput
}

// optionsSpy is a worker interceptor that keeps the options of every
// activity the workflow schedules: the test environment does not hand an
// activity its retry policy (activity.Info.RetryPolicy is nil there).
type optionsSpy struct {
	interceptor.WorkerInterceptorBase
	mu    sync.Mutex
	acts  []scheduled
	hosts map[string]bool // queues of host steps
}

func (s *optionsSpy) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &spyInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, spy: s}
}

type spyInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	spy *optionsSpy
}

func (i *spyInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&spyOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, spy: i.spy})
}

type spyOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	spy *optionsSpy
}

func (o *spyOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	a := scheduled{name: activityType, opts: workflow.GetActivityOptions(ctx)}
	if len(args) == 1 {
		if in, ok := args[0].(activities.StepInput); ok {
			a.in = in
		}
	}
	o.spy.mu.Lock()
	o.spy.acts = append(o.spy.acts, a)
	o.spy.mu.Unlock()
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// of returns the scheduled activities of one type.
func (s *optionsSpy) of(name string) []scheduled {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []scheduled
	for _, a := range s.acts {
		if a.name == name {
			out = append(out, a)
		}
	}
	return out
}

func spyOn(f *fixture) *optionsSpy {
	s := &optionsSpy{}
	f.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{s}})
	return s
}

// attemptOn is one run of a mocked host step: its queue and attempt.
type attemptOn struct {
	queue   string
	attempt int32
}

// lostHostsRunner mocks a runner whose claims go, block by block, to the
// hosts of claimedBy (h1, h2...), and whose Init times out its heartbeat on
// every host of lost. It returns the Init attempts.
func lostHostsRunner(f *fixture, claimedBy []string, lost ...string) func() []attemptOn {
	var mu sync.Mutex
	var inits []attemptOn
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.ClaimOutput, error) {
			h := claimedBy[in.Run-1]
			out := activities.ClaimOutput{Host: h, HostQueue: task.HostTaskQueue("default", "local", h)}
			if in.Install {
				out.TerraformPath, out.Version = "/usr/local/bin/terraform", "1.11.4"
			}
			return out, nil
		})
	f.env.OnActivity(activities.NameInit, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.StepInput) error {
			info := activity.GetInfo(ctx)
			mu.Lock()
			inits = append(inits, attemptOn{info.TaskQueue, info.Attempt})
			mu.Unlock()
			for _, h := range lost {
				if info.TaskQueue == task.HostTaskQueue("default", "local", h) {
					// The host froze mid-step: the server timed its
					// heartbeat out.
					return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
				}
			}
			return nil
		})
	f.happy()
	return func() []attemptOn {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(inits)
	}
}

// finalHost is the host the ended task ran on last.
func finalHost(t *testing.T, f *fixture) string {
	t.Helper()
	v, err := f.env.QueryWorkflow(task.QueryState)
	require.NoError(t, err)
	var st task.State
	require.NoError(t, v.Get(&st))
	require.Equal(t, task.StatusCompleted, st.Status)
	return st.Host
}

// serverRetries reports whether Temporal's server (v1.32,
// common/retrypolicy, which decides an activity's retries) retries an
// attempt whose heartbeat timed out under policy p.
func serverRetries(t *testing.T, p *temporal.RetryPolicy) bool {
	t.Helper()
	require.NotNil(t, p)
	pb := &commonpb.RetryPolicy{
		InitialInterval:        durationpb.New(p.InitialInterval),
		BackoffCoefficient:     p.BackoffCoefficient,
		MaximumInterval:        durationpb.New(p.MaximumInterval),
		MaximumAttempts:        p.MaximumAttempts,
		NonRetryableErrorTypes: p.NonRetryableErrorTypes,
	}
	require.NoError(t, retrypolicy.Validate(pb), "the server accepts the policy")
	hb := &failurepb.Failure{Message: "activity Heartbeat timeout", FailureInfo: &failurepb.Failure_TimeoutFailureInfo{
		TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{TimeoutType: enumspb.TIMEOUT_TYPE_HEARTBEAT}}}
	return retrypolicy.IsRetryableFailure(hb, pb.NonRetryableErrorTypes)
}

// TestHeartbeatTimeoutMovesBlockOffLostHost (issue 27): in the lease
// version, a host step whose heartbeat times out is not retried on its
// host's queue, where a frozen host's open polls would swallow the retries
// and run them all at once when it wakes: the block restarts, and its claim
// names the lost host, which leaves the claim to another host.
//
// The SDK's test environment retries every heartbeat timeout, whatever the
// retry policy's NonRetryableErrorTypes say (internal.IsRetryable; the
// "TemporalTimeout:" types are the server's), so here the step on the lost
// host runs its five attempts before the block ends. What the server does
// is checked on the retry policy the workflow scheduled the step with,
// through the server's own retry decision (serverRetries).
func TestHeartbeatTimeoutMovesBlockOffLostHost(t *testing.T) {
	f := newFixture(t)
	spy := spyOn(f)
	inits := lostHostsRunner(f, []string{"h1", "h2"}, "h1")
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.True(t, f.env.IsWorkflowCompleted())
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, "h2", finalHost(t, f))

	// Two blocks; the second's claim avoids h1.
	claims := spy.of(activities.NameClaim)
	require.Len(t, claims, 2)
	require.Equal(t, 1, claims[0].in.Run)
	require.Empty(t, claims[0].in.AvoidHosts)
	require.Equal(t, 2, claims[1].in.Run)
	require.Equal(t, []string{"h1"}, claims[1].in.AvoidHosts)
	for _, c := range claims {
		// A claim a frozen host's poll took is retried after 5 s.
		require.Equal(t, task.RunnerTaskQueue("default", "local"), c.opts.TaskQueue, "the claim goes to the task org's runner")
		require.Equal(t, claimHeartbeatTimeout, c.opts.HeartbeatTimeout)
		require.Equal(t, time.Minute, c.opts.StartToCloseTimeout)
		require.Equal(t, &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 5 * time.Second, MaximumAttempts: 10, NonRetryableErrorTypes: nonRetryable}, c.opts.RetryPolicy)
		require.True(t, serverRetries(t, c.opts.RetryPolicy), "a claim's heartbeat timeout is retried: on the shared queue")
	}

	// Init was scheduled on h1's queue once; the server does not retry
	// its heartbeat timeout there.
	scheduledInits := spy.of(activities.NameInit)
	require.Len(t, scheduledInits, 2)
	require.Equal(t, task.HostTaskQueue("default", "local", "h1"), scheduledInits[0].opts.TaskQueue)
	require.Equal(t, task.HostTaskQueue("default", "local", "h2"), scheduledInits[1].opts.TaskQueue)
	for _, a := range append(scheduledInits, spy.of(activities.NamePlan)...) {
		require.Contains(t, a.opts.RetryPolicy.NonRetryableErrorTypes, "TemporalTimeout:Heartbeat")
		require.False(t, serverRetries(t, a.opts.RetryPolicy), "%s on %s: a heartbeat timeout ends the block", a.name, a.opts.TaskQueue)
	}
	require.Equal(t, []string{"h1"}, spy.of(activities.NameInit)[1].in.AvoidHosts, "later steps carry the block's input")

	// The attempts the test environment ran: its own retries on h1 (see
	// above), then h2 at once.
	var onH1, onH2 []int32
	for _, a := range inits() {
		switch a.queue {
		case task.HostTaskQueue("default", "local", "h1"):
			onH1 = append(onH1, a.attempt)
		case task.HostTaskQueue("default", "local", "h2"):
			onH2 = append(onH2, a.attempt)
		}
	}
	require.NotEmpty(t, onH1)
	require.Equal(t, []int32{1}, onH2)
}

// TestLostHostsAreAvoidedInOrder: every block's claim names the hosts lost
// in the blocks before it, each once, in the order they were lost (a host
// the runner hands the task again after its refusals is not named twice).
func TestLostHostsAreAvoidedInOrder(t *testing.T) {
	f := newFixture(t)
	spy := spyOn(f)
	lostHostsRunner(f, []string{"h1", "h2", "h1", "h3"}, "h1", "h2")
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, "h3", finalHost(t, f))
	var avoided [][]string
	for _, c := range spy.of(activities.NameClaim) {
		avoided = append(avoided, c.in.AvoidHosts)
	}
	require.Equal(t, [][]string{nil, {"h1"}, {"h1", "h2"}, {"h1", "h2"}}, avoided)
}

// TestBeforeLeaseVersionKeepsRetries: a run of the version before the
// lease (histories recorded before it) keeps the claim's and the steps'
// options and avoids no host.
func TestBeforeLeaseVersionKeepsRetries(t *testing.T) {
	f := newFixture(t)
	f.env.OnGetVersion(versionLease, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	spy := spyOn(f)
	lostHostsRunner(f, []string{"h1", "h2"}, "h1")
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	claims := spy.of(activities.NameClaim)
	require.Len(t, claims, 2)
	for _, c := range claims {
		require.Empty(t, c.in.AvoidHosts)
		require.Zero(t, c.opts.HeartbeatTimeout)
		require.Equal(t, int32(5), c.opts.RetryPolicy.MaximumAttempts)
	}
	for _, a := range spy.of(activities.NameInit) {
		require.Equal(t, nonRetryable, a.opts.RetryPolicy.NonRetryableErrorTypes)
		require.True(t, serverRetries(t, a.opts.RetryPolicy))
	}
}

// TestSilentClaimsEndInRunnerUnavailable: in the lease version, a claim
// whose every attempt a host took and then went silent ends the task as
// runner_unavailable, saying so (not "no runner picked the task up").
func TestSilentClaimsEndInRunnerUnavailable(t *testing.T) {
	f := newFixture(t)
	var attempts []int32
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.StepInput) (activities.ClaimOutput, error) {
			attempts = append(attempts, activity.GetInfo(ctx).Attempt)
			return activities.ClaimOutput{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
		})
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, f.env.GetWorkflowError(), &appErr)
	require.Equal(t, task.CodeRunnerUnavailable, appErr.Type())
	require.Contains(t, appErr.Message(), "went silent")
	require.Equal(t, []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, attempts)
}
