package workflows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/task"
)

// recorder keeps what the workflow recorded through its Record activity.
type recorder struct {
	mu      sync.Mutex
	records []controlplane.Record
	// calls counts the Record activities (a batch is one).
	calls int
}

func (r *recorder) Record(_ context.Context, rec controlplane.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	then := rec.Then
	rec.Then = nil
	r.records = append(r.records, rec)
	r.records = append(r.records, then...)
	return nil
}

func (r *recorder) statuses() []task.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []task.Status
	for _, rec := range r.records {
		if len(out) == 0 || out[len(out)-1] != rec.Transition.Status {
			out = append(out, rec.Transition.Status)
		}
	}
	return out
}

// last returns the terminal record: records of concurrent transitions (a
// cancel request beside the run) may complete in either order, as in the
// store, which keeps a terminal status once written.
func (r *recorder) last() controlplane.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.records) - 1; i >= 0; i-- {
		if r.records[i].Transition.Status.Terminal() {
			return r.records[i]
		}
	}
	return r.records[len(r.records)-1]
}

// stub activities: the real ones run Terraform and are tested in package
// activities and end to end; here each is replaced per test with OnActivity.
func stubClaim(context.Context, activities.StepInput) (activities.ClaimOutput, error) {
	return activities.ClaimOutput{}, nil
}
func stubInstall(context.Context, activities.StepInput) (activities.InstallOutput, error) {
	return activities.InstallOutput{}, nil
}
func stubInit(context.Context, activities.StepInput) error { return nil }
func stubPlan(context.Context, activities.StepInput) (activities.PlanOutput, error) {
	return activities.PlanOutput{}, nil
}
func stubApply(context.Context, activities.StepInput) (activities.ApplyOutput, error) {
	return activities.ApplyOutput{}, nil
}
func stubCleanup(context.Context, activities.StepInput) error          { return nil }
func stubForceStop(context.Context, activities.StepInput) (int, error) { return 0, nil }

type fixture struct {
	env   *testsuite.TestWorkflowEnvironment
	rec   *recorder
	calls []string
	mu    sync.Mutex
	// policy answers the policy checks (nil: the org has no policies);
	// checks are the checks asked for.
	policy func(controlplane.PolicyInput) controlplane.PolicyOutput
	checks []controlplane.PolicyInput
}

// checkPolicy stands in for the control plane's policy check (its real
// evaluation is tested in package policy and end to end).
func (f *fixture) checkPolicy(_ context.Context, in controlplane.PolicyInput) (controlplane.PolicyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, in)
	if f.policy == nil {
		return controlplane.PolicyOutput{}, nil
	}
	return f.policy(in), nil
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, Options{}) }

// newFixtureWith is newFixture with the workflows registered with o.
func newFixtureWith(t *testing.T, o Options) *fixture {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fixture{env: env, rec: &recorder{}}
	Register(env, o)
	env.RegisterActivityWithOptions(f.rec.Record, activity.RegisterOptions{Name: controlplane.NameRecord})
	env.RegisterActivityWithOptions(f.checkPolicy, activity.RegisterOptions{Name: controlplane.NameCheckPolicy})
	for name, fn := range map[string]any{
		activities.NameClaim: stubClaim, activities.NameInstall: stubInstall, activities.NameInit: stubInit,
		activities.NamePlan: stubPlan, activities.NameApply: stubApply, activities.NameCleanup: stubCleanup,
		activities.NameForceStop: stubForceStop,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, info.ActivityType.Name)
	})
	return f
}

// happy mocks every runner activity with a successful result, as a
// current runner answers: the claim installs, the apply cleans up.
func (f *fixture) happy() {
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.ClaimOutput, error) {
			out := activities.ClaimOutput{Host: "h1", HostQueue: task.HostTaskQueue("default", "local", "h1")}
			if in.Install {
				out.TerraformPath, out.Version = "/usr/local/bin/terraform", "1.11.4"
			}
			return out, nil
		})
	f.env.OnActivity(activities.NameInstall, mock.Anything, mock.Anything).Return(
		activities.InstallOutput{TerraformPath: "/usr/local/bin/terraform", Version: "1.11.4"}, nil)
	f.env.OnActivity(activities.NameInit, mock.Anything, mock.Anything).Return(nil)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
		activities.PlanOutput{HasChanges: true, PlannedChanges: 5, Add: 5}, nil)
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.ApplyOutput, error) {
			return activities.ApplyOutput{ChangesDone: 5, Outputs: map[string]any{"url": "https://x", "token": "(sensitive)"},
				CleanedUp: in.CleanUp}, nil
		})
	f.env.OnActivity(activities.NameCleanup, mock.Anything, mock.Anything).Return(nil)
}

func (f *fixture) activityCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if c != controlplane.NameRecord && c != controlplane.NameCheckPolicy {
			out = append(out, c)
		}
	}
	return out
}

func input(action task.Action) task.Input {
	return task.Input{
		ID: "task-abc", Name: "deploy", AgentID: "agent-1", RunnerID: "local", Org: "default",
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Params:    task.Params{Action: action},
	}
}

func TestApplyRunsEveryStepInOrder(t *testing.T) {
	f := newFixture(t)
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.True(t, f.env.IsWorkflowCompleted())
	require.NoError(t, f.env.GetWorkflowError())

	var out task.Output
	require.NoError(t, f.env.GetWorkflowResult(&out))
	require.Equal(t, task.StatusCompleted, out.Status)
	require.Equal(t, "https://x", out.Result.Output["url"])
	require.Nil(t, out.Result.Error)

	// The claim installs and the apply cleans up (versionFast): four
	// activities; the pickup and the first two steps share one Record.
	require.Equal(t, []string{activities.NameClaim, activities.NameInit,
		activities.NamePlan, activities.NameApply}, f.activityCalls())
	require.Equal(t, []task.Status{task.StatusPending, task.StatusRunning, task.StatusCompleted}, f.rec.statuses())
	require.Equal(t, 5, f.rec.calls, "Record activities")
	var events []task.EventType
	for _, rec := range f.rec.records {
		events = append(events, rec.Event)
	}
	require.Equal(t, []task.EventType{task.EventTaskCreated, task.EventForStatus(task.StatusRunning), task.EventTaskStep,
		task.EventTaskStep, task.EventTaskStep, task.EventTaskStep, task.EventForStatus(task.StatusCompleted)}, events)

	prev := -1
	for _, rec := range f.rec.records {
		require.GreaterOrEqual(t, rec.Transition.Progress, prev, "progress never decreases")
		prev = rec.Transition.Progress
		if rec.Transition.Status != task.StatusCompleted {
			require.Less(t, rec.Transition.Progress, 100)
		}
		require.Len(t, rec.Logs, 1)
	}
	last := f.rec.last()
	require.Equal(t, 100, last.Transition.Progress)
	require.Equal(t, 4, last.Transition.StepsCompleted)
	require.NotNil(t, last.Transition.StartedAt)
	require.NotNil(t, last.Transition.CompletedAt)
	// Log sequence numbers of the workflow's own stream are gapless.
	for i, rec := range f.rec.records {
		require.Equal(t, int64(i+1), rec.Logs[0].Seq)
	}
}

// TestRunnerWithoutInstallInClaim: a runner that predates the claim's
// install answers without a binary and its apply does not clean up: the
// workflow runs Install and Cleanup as before.
func TestRunnerWithoutInstallInClaim(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
		activities.ClaimOutput{Host: "h1", HostQueue: task.HostTaskQueue("default", "local", "h1")}, nil)
	f.env.OnActivity(activities.NameInstall, mock.Anything, mock.Anything).Return(
		activities.InstallOutput{TerraformPath: "/usr/local/bin/terraform", Version: "1.11.4"}, nil)
	f.env.OnActivity(activities.NameInit, mock.Anything, mock.Anything).Return(nil)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(activities.PlanOutput{PlannedChanges: 1, Add: 1}, nil)
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).Return(activities.ApplyOutput{ChangesDone: 1}, nil)
	f.env.OnActivity(activities.NameCleanup, mock.Anything, mock.Anything).Return(nil)
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []string{activities.NameClaim, activities.NameInstall, activities.NameInit,
		activities.NamePlan, activities.NameApply, activities.NameCleanup}, f.activityCalls())
	var steps []task.Step
	for _, rec := range f.rec.records {
		if s := rec.Transition.CurrentStep; s != "" && (len(steps) == 0 || steps[len(steps)-1] != s) {
			steps = append(steps, s)
		}
	}
	require.Equal(t, []task.Step{task.StepInstalling, task.StepInitializing, task.StepPlanning, task.StepApplying}, steps)
}

func TestPlanOnlyHasThreeSteps(t *testing.T) {
	f := newFixture(t)
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(task.ActionPlan))
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []string{activities.NameClaim, activities.NameInit,
		activities.NamePlan, activities.NameCleanup}, f.activityCalls())
	last := f.rec.last()
	require.Equal(t, 3, last.Transition.TotalSteps)
	require.Equal(t, 3, last.Transition.StepsCompleted)
	require.Equal(t, 100, last.Transition.Progress)
}

func TestDestroyEndsWithDestroyingStep(t *testing.T) {
	f := newFixture(t)
	f.happy()
	var steps []task.Step
	f.env.ExecuteWorkflow(task.WorkflowType, input(task.ActionDestroy))
	require.NoError(t, f.env.GetWorkflowError())
	for _, rec := range f.rec.records {
		if s := rec.Transition.CurrentStep; s != "" && (len(steps) == 0 || steps[len(steps)-1] != s) {
			steps = append(steps, s)
		}
	}
	require.Equal(t, []task.Step{task.StepInstalling, task.StepInitializing, task.StepPlanning, task.StepDestroying}, steps)
}

func TestStateQueryDuringApply(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).After(time.Minute).Return(
		activities.ApplyOutput{ChangesDone: 5}, nil).Once()
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(task.SignalProgress, task.Progress{Step: task.StepApplying, PlannedChanges: 5, ChangesDone: 2})
	}, 20*time.Second)
	var mid task.State
	f.env.RegisterDelayedCallback(func() {
		v, err := f.env.QueryWorkflow(task.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 30*time.Second)
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())

	require.Equal(t, task.StatusRunning, mid.Status)
	require.Equal(t, task.StepApplying, mid.CurrentStep)
	require.Equal(t, 3, mid.StepsCompleted)
	require.Equal(t, 4, mid.TotalSteps)
	require.Equal(t, 2, mid.ChangesDone)
	require.Equal(t, 5, mid.PlannedChanges)
	require.Equal(t, "h1", mid.Host)
	require.NotNil(t, mid.StartedAt)
	// 6 of 20 weight units done, plus 2/5 of applying's 14.
	require.Equal(t, task.ComputeProgress(task.ActionApply.Steps(), 3, 5, 2), mid.Progress)
	require.Greater(t, mid.Progress, task.ComputeProgress(task.ActionApply.Steps(), 3, 5, 0))

	v, err := f.env.QueryWorkflow(task.QueryState)
	require.NoError(t, err)
	var end task.State
	require.NoError(t, v.Get(&end))
	require.Equal(t, task.StatusCompleted, end.Status)
	require.Equal(t, 100, end.Progress)
}

func TestTerraformFailureMapsToResultError(t *testing.T) {
	f := newFixture(t)
	diag := task.Error{Code: task.CodeTerraform, Message: "Unsupported argument", Details: map[string]any{
		"diagnostics": []task.Diagnostic{{Severity: "error", Summary: "Unsupported argument", File: "main.tf", Line: 3}},
	}}
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(activities.PlanOutput{},
		temporal.NewNonRetryableApplicationError(diag.Message, diag.Code, nil, diag)).Once()
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))

	err := f.env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "got %v", err)
	require.Equal(t, task.CodeTerraform, appErr.Type())
	var got task.Error
	require.NoError(t, appErr.Details(&got))
	require.Equal(t, "Unsupported argument", got.Message)

	last := f.rec.last()
	require.Equal(t, task.StatusFailed, last.Transition.Status)
	require.NotNil(t, last.Transition.Result.Error)
	require.Equal(t, task.CodeTerraform, last.Transition.Result.Error.Code)
	require.Contains(t, last.Transition.Result.Error.Details, "diagnostics")
	require.Less(t, last.Transition.Progress, 100)
	require.NotContains(t, f.activityCalls(), activities.NameApply)
	require.Equal(t, 1, countCalls(f.activityCalls(), activities.NamePlan), "a terraform error is not retried")
}

func TestRunnerNeverPicksUp(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(activities.ClaimOutput{},
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &appErr))
	require.Equal(t, task.CodeRunnerUnavailable, appErr.Type())
	require.Equal(t, []task.Status{task.StatusPending, task.StatusFailed}, f.rec.statuses())
}

func TestLostHostRestartsBlock(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameInit, mock.Anything, mock.Anything).Return(
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)).Once()
	var runs []int
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.ClaimOutput, error) {
			runs = append(runs, in.Run)
			return activities.ClaimOutput{Host: "h", HostQueue: "q"}, nil
		})
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []int{1, 2}, runs)
	require.Equal(t, task.StatusCompleted, f.rec.last().Transition.Status)
}

func TestCancelDuringApplyRecordsWho(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).After(time.Hour).Return(
		activities.ApplyOutput{}, nil).Once()
	f.happy()
	requested := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(task.SignalCancel, task.CancelRequest{By: "ops-key", At: requested})
		f.env.CancelWorkflow()
	}, time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.True(t, temporal.IsCanceledError(f.env.GetWorkflowError()), "got %v", f.env.GetWorkflowError())
	// The cancel request and the cancellation arrive together: the task may
	// go through cancelling or straight to cancelled, naming the key either way.
	statuses := f.rec.statuses()
	require.Subset(t, statuses, []task.Status{task.StatusPending, task.StatusRunning, task.StatusCancelled})
	require.Subset(t, []task.Status{task.StatusPending, task.StatusRunning, task.StatusCancelling, task.StatusCancelled}, statuses)
	last := f.rec.last()
	require.Equal(t, task.StatusCancelled, last.Transition.Status)
	require.Equal(t, "ops-key", last.Transition.CancelledBy)
	require.Equal(t, requested, *last.Transition.CancelledAt)
	require.Equal(t, "cancelled", last.Transition.Result.Error.Code)
	require.Contains(t, last.Logs[0].Message, "applying")
	require.Less(t, last.Transition.Progress, 100)
	require.Contains(t, f.activityCalls(), activities.NameCleanup, "the work dir is cleaned after a cancel too")
}

func TestForceCancelStopsProcessesOnHost(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).After(time.Hour).Return(
		activities.ApplyOutput{}, nil).Once()
	var forcedOn []string
	f.env.OnActivity(activities.NameForceStop, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.StepInput) (int, error) {
			forcedOn = append(forcedOn, in.Task.ID)
			return 3, nil
		})
	f.happy()
	// The apply ignores the graceful stop for a while (a stuck provider);
	// the force request arrives while it still runs.
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(task.SignalCancel, task.CancelRequest{By: "ops"})
		f.env.SignalWorkflow(task.SignalCancel, task.CancelRequest{By: "admin", Force: true})
	}, time.Minute)
	f.env.RegisterDelayedCallback(f.env.CancelWorkflow, 2*time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.True(t, temporal.IsCanceledError(f.env.GetWorkflowError()))
	require.Equal(t, []string{"task-abc"}, forcedOn)
	var sawForce bool
	for _, rec := range f.rec.records {
		if strings.Contains(rec.Logs[0].Message, "force cancel by admin: stopped 3 process(es)") {
			sawForce = true
		}
	}
	require.True(t, sawForce)
	require.Equal(t, "ops", f.rec.last().Transition.CancelledBy, "the first cancel is the one recorded")
}

func TestTimeoutEndsTaskWithTimeoutCode(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).After(time.Hour).Return(
		activities.ApplyOutput{}, nil).Once()
	f.happy()
	in := input("")
	in.Params.Timeout = task.Duration(10 * time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &appErr), "got %v", f.env.GetWorkflowError())
	require.Equal(t, task.CodeTimeout, appErr.Type())
	last := f.rec.last()
	require.Equal(t, task.StatusFailed, last.Transition.Status)
	require.Equal(t, task.CodeTimeout, last.Transition.Result.Error.Code)
	require.Equal(t, "applying", last.Transition.Result.Error.Details["step"])
}

func TestCancelPendingTask(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).After(24*time.Hour).Return(
		activities.ClaimOutput{}, nil)
	f.env.RegisterDelayedCallback(f.env.CancelWorkflow, time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.True(t, temporal.IsCanceledError(f.env.GetWorkflowError()))
	require.Equal(t, []task.Status{task.StatusPending, task.StatusCancelled}, f.rec.statuses())
	require.Equal(t, "temporal", f.rec.last().Transition.CancelledBy)
}

func countCalls(calls []string, name string) int {
	n := 0
	for _, c := range calls {
		if c == name {
			n++
		}
	}
	return n
}

func TestTransitionEvent(t *testing.T) {
	for _, c := range []struct {
		first                 bool
		before, after         task.Status
		beforeStep, afterStep task.Step
		want                  task.EventType
	}{
		{true, task.StatusPending, task.StatusPending, "", "", task.EventTaskCreated},
		{false, task.StatusPending, task.StatusPending, "", "", ""},
		{false, task.StatusPending, task.StatusRunning, "", "", task.EventTaskRunning},
		{false, task.StatusRunning, task.StatusRunning, "", task.StepInstalling, task.EventTaskStep},
		{false, task.StatusRunning, task.StatusRunning, task.StepPlanning, task.StepPlanning, ""},
		{false, task.StatusRunning, task.StatusWaitingApproval, task.StepPlanning, task.StepPlanning, task.EventTaskWaitingApproval},
		{false, task.StatusRunning, task.StatusCancelling, task.StepApplying, task.StepApplying, ""},
		{false, task.StatusCancelling, task.StatusCancelled, task.StepApplying, task.StepApplying, task.EventTaskCancelled},
		{false, task.StatusRunning, task.StatusCompleted, task.StepApplying, "", task.EventTaskCompleted},
		{false, task.StatusRunning, task.StatusFailed, task.StepApplying, task.StepApplying, task.EventTaskFailed},
		{false, task.StatusWaitingApproval, task.StatusRejected, task.StepPlanning, task.StepPlanning, task.EventTaskRejected},
	} {
		if got := transitionEvent(c.first, c.before, c.after, c.beforeStep, c.afterStep); got != c.want {
			t.Errorf("transitionEvent(%v, %s->%s, %q->%q) = %q, want %q", c.first, c.before, c.after, c.beforeStep, c.afterStep, got, c.want)
		}
	}
}
