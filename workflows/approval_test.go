package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/task"
)

// waitingPlan is the plan of a task that replaces one resource.
var waitingPlan = activities.PlanOutput{HasChanges: true, PlannedChanges: 2, Add: 1, Remove: 1,
	Summary: task.PlanSummary{Add: 1, Destroy: 1, Replace: 1}, Digest: "d1gest", Sealed: true}

func approvalInput(mode task.Approval) task.Input {
	in := input("")
	in.CreatedBy = "ops-a"
	in.Params.Approval = mode
	return in
}

// applies records the StepInputs Apply was called with.
func (f *fixture) applies() *[]activities.StepInput {
	var got []activities.StepInput
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.ApplyOutput, error) {
			got = append(got, in)
			return activities.ApplyOutput{ChangesDone: 2, Outputs: map[string]any{"id": "x"}}, nil
		})
	return &got
}

func (f *fixture) query(t *testing.T) task.State {
	t.Helper()
	v, err := f.env.QueryWorkflow(task.QueryState)
	require.NoError(t, err)
	var st task.State
	require.NoError(t, v.Get(&st))
	return st
}

// decide sends the decision update and returns its outcome.
type outcome struct {
	accepted, rejected bool
	err                error
	state              task.State
}

func (f *fixture) decide(t *testing.T, id string, d task.Decision) *outcome {
	o := &outcome{}
	f.env.UpdateWorkflow(task.UpdateDecision, id, &testsuite.TestUpdateCallback{
		OnAccept: func() { o.accepted = true },
		OnReject: func(err error) { o.rejected, o.err = true, err },
		OnComplete: func(v any, err error) {
			o.err = err
			switch x := v.(type) {
			case task.State:
				o.state = x
			case *commonpb.Payloads:
				require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(x, &o.state))
			case nil:
			default:
				t.Fatalf("update result of type %T", v)
			}
		},
	}, d)
	return o
}

func TestApprovalRequiredWaitsThenAppliesTheSavedPlan(t *testing.T) {
	f := newFixture(t)
	var waiting task.State
	var early, won, lost *outcome
	var callsWhileWaiting []string
	// A decision while the task plans (sent from the plan's mock: a delayed
	// callback fires when the test clock first skips ahead, which may be
	// once the task already waits).
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.StepInput) (activities.PlanOutput, error) {
			early = f.decide(t, "early", task.Decision{Approve: true, By: "ops-b"})
			return waitingPlan, nil
		}).Once()
	applied := f.applies()
	f.happy()
	in := approvalInput(task.ApprovalRequired)
	in.Params.Timeout = task.Duration(time.Hour)
	start := f.env.Now()
	// Three hours of waiting: more than the task's one-hour timeout,
	// which does not run while the task waits.
	f.env.RegisterDelayedCallback(func() {
		waiting = f.query(t)
		callsWhileWaiting = f.activityCalls()
		won = f.decide(t, "first", task.Decision{Approve: true, By: "ops-b", Comment: "ship it"})
		lost = f.decide(t, "second", task.Decision{Approve: false, By: "ops-c"})
	}, 3*time.Hour)
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	require.NoError(t, f.env.GetWorkflowError())

	require.True(t, early.rejected, "a decision before the plan is refused")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(early.err, &appErr))
	require.Equal(t, errNotWaiting, appErr.Type())

	require.Equal(t, task.StatusWaitingApproval, waiting.Status)
	require.Equal(t, "approval", waiting.WaitingFor)
	require.Equal(t, &task.PlanSummary{Add: 1, Destroy: 1, Replace: 1}, waiting.Plan)
	require.NotNil(t, waiting.Approval.ExpiresAt)
	require.WithinDuration(t, start.Add(24*time.Hour), *waiting.Approval.ExpiresAt, time.Second)
	require.Equal(t, "ops-a", waiting.CreatedBy)
	require.Equal(t, []string{activities.NameClaim, activities.NameInit, activities.NamePlan}, callsWhileWaiting,
		"no activity runs while the task waits")

	require.True(t, won.accepted)
	require.NoError(t, won.err)
	require.Equal(t, task.StatusRunning, won.state.Status)
	require.Equal(t, "ops-b", won.state.Approval.ApprovedBy)
	require.True(t, lost.rejected, "the second decision is refused")
	require.True(t, errors.As(lost.err, &appErr))
	require.Equal(t, errDecided, appErr.Type())

	require.Len(t, *applied, 1)
	require.Equal(t, &activities.SavedPlan{Digest: "d1gest"}, (*applied)[0].SavedPlan, "the apply names the approved plan")
	require.Equal(t, []task.Status{task.StatusPending, task.StatusRunning, task.StatusWaitingApproval, task.StatusRunning, task.StatusCompleted}, f.rec.statuses())
	last := f.rec.last()
	require.Equal(t, "ops-b", last.Transition.Approval.ApprovedBy)
	require.Equal(t, "ship it", last.Transition.Approval.Comment)
	require.Equal(t, &task.PlanSummary{Add: 1, Destroy: 1, Replace: 1}, last.Transition.Plan)
	require.Equal(t, "x", last.Transition.Result.Output["id"])
	events := map[task.EventType]int{}
	for _, rec := range f.rec.records {
		events[rec.Event]++
		if rec.Transition.Status == task.StatusWaitingApproval && rec.Event != "" {
			require.Equal(t, task.EventTaskWaitingApproval, rec.Event)
		}
	}
	require.Equal(t, 1, events[task.EventTaskWaitingApproval])
	require.True(t, hasLog(f, "the plan was approved by ops-b (comment: ship it)"))
}

func hasLog(f *fixture, sub string) bool {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	for _, rec := range f.rec.records {
		for _, l := range rec.Logs {
			if strings.Contains(l.Message, sub) {
				return true
			}
		}
	}
	return false
}

func TestApprovalRejectedEndsRejected(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	f.happy()
	var o *outcome
	f.env.RegisterDelayedCallback(func() {
		o = f.decide(t, "r", task.Decision{Approve: false, By: "ops-b", Comment: "not today"})
	}, time.Hour)
	f.env.ExecuteWorkflow(task.WorkflowType, approvalInput(task.ApprovalDestructive))
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &appErr), "got %v", f.env.GetWorkflowError())
	require.Equal(t, task.CodeRejected, appErr.Type())
	require.True(t, o.accepted)
	require.NoError(t, o.err)
	require.Equal(t, task.StatusRejected, o.state.Status, "the update answers with the outcome")
	require.NotContains(t, f.activityCalls(), activities.NameApply)
	require.Contains(t, f.activityCalls(), activities.NameCleanup)
	last := f.rec.last()
	require.Equal(t, task.StatusRejected, last.Transition.Status)
	require.Equal(t, task.CodeRejected, last.Transition.Result.Error.Code)
	require.Equal(t, "ops-b", last.Transition.Approval.RejectedBy)
	require.Equal(t, "not today", last.Transition.Approval.Comment)
	require.Equal(t, task.EventTaskRejected, last.Event)
}

func TestApprovalTimeoutEndsRejected(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	f.happy()
	in := approvalInput(task.ApprovalRequired)
	in.ApprovalWait = task.Duration(48 * time.Hour)
	in.Params.ApprovalTimeout = task.Duration(30 * time.Minute) // the task's own wins
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &appErr))
	require.Equal(t, task.CodeApprovalTimeout, appErr.Type())
	last := f.rec.last()
	require.Equal(t, task.StatusRejected, last.Transition.Status)
	require.Equal(t, task.CodeApprovalTimeout, last.Transition.Result.Error.Code)
	require.Equal(t, "30m0s", last.Transition.Result.Error.Details["approval_timeout"])
	require.NotContains(t, f.activityCalls(), activities.NameApply)
}

func TestCancelWhileWaitingEndsAtOnce(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	f.happy()
	// A minute into the wait, long before any timer of the workflow's (an
	// hour's callback raced the test clock's skip to the hour: one failure
	// under -race on CI).
	// The request, then the cancel itself, as the API sends them; in
	// separate callbacks, so the listener has read the request when the
	// cancel ends the wait (in one callback the two raced: one failure
	// under -race on CI, the request then read by finish, unlogged).
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(task.SignalCancel, task.CancelRequest{By: "ops-b"})
	}, time.Minute)
	f.env.RegisterDelayedCallback(func() {
		f.env.CancelWorkflow()
	}, time.Minute+time.Second)
	f.env.ExecuteWorkflow(task.WorkflowType, approvalInput(task.ApprovalRequired))
	require.True(t, temporal.IsCanceledError(f.env.GetWorkflowError()), "got %v", f.env.GetWorkflowError())
	last := f.rec.last()
	require.Equal(t, task.StatusCancelled, last.Transition.Status)
	require.Equal(t, "ops-b", last.Transition.CancelledBy)
	require.NotContains(t, f.activityCalls(), activities.NameApply)
	require.Contains(t, f.activityCalls(), activities.NameCleanup, "the work dir is removed")
	require.True(t, hasLog(f, "while the plan waits for approval"))
}

func TestApprovalNotNeeded(t *testing.T) {
	for _, c := range []struct {
		name string
		mode task.Approval
		plan task.PlanSummary
	}{
		{"create-only under destructive", task.ApprovalDestructive, task.PlanSummary{Add: 3}},
		{"no changes under required", task.ApprovalRequired, task.PlanSummary{}},
		{"an update under destructive", task.ApprovalDestructive, task.PlanSummary{Change: 1, Outputs: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
				activities.PlanOutput{Summary: c.plan, Digest: "d"}, nil).Once()
			applied := f.applies()
			f.happy()
			f.env.ExecuteWorkflow(task.WorkflowType, approvalInput(c.mode))
			require.NoError(t, f.env.GetWorkflowError())
			require.NotContains(t, f.rec.statuses(), task.StatusWaitingApproval)
			require.Len(t, *applied, 1)
			require.Nil(t, (*applied)[0].SavedPlan, "a plan that did not wait is applied as under approval none")
			require.True(t, hasLog(f, "needs no approval"))
		})
	}
}

func TestApprovalRequiredWaitsForOutputChanges(t *testing.T) {
	require.True(t, task.ApprovalRequired.Waits(task.PlanSummary{Outputs: 1}))
	require.False(t, task.ApprovalDestructive.Waits(task.PlanSummary{Outputs: 1, Add: 1, Change: 1}))
	require.True(t, task.ApprovalDestructive.Waits(task.PlanSummary{Destroy: 1}))
	require.False(t, task.ApprovalNone.Waits(task.PlanSummary{Destroy: 1}))
}

func TestApprovedPlanAppliedOnAnotherHostWhenThePlannerIsLost(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	claims := 0
	f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.StepInput) (activities.ClaimOutput, error) {
			claims++
			h := []string{"", "h1", "h2"}[claims]
			return activities.ClaimOutput{Host: h, HostQueue: task.HostTaskQueue("default", "local", h)}, nil
		})
	// The planning host is gone when the apply comes: its queue times out.
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).Return(activities.ApplyOutput{},
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)).Once()
	applied := f.applies()
	f.happy()
	f.env.RegisterDelayedCallback(func() {
		f.decide(t, "a", task.Decision{Approve: true, By: "ops-b"})
	}, time.Hour)
	f.env.ExecuteWorkflow(task.WorkflowType, approvalInput(task.ApprovalRequired))
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, 2, claims)
	require.Equal(t, 1, countCalls(f.activityCalls(), activities.NamePlan), "an approved plan is never planned again")
	require.Equal(t, 2, countCalls(f.activityCalls(), activities.NameInit), "the new host installs and inits")
	require.Len(t, *applied, 1)
	require.Equal(t, 2, (*applied)[0].Run)
	require.Equal(t, "d1gest", (*applied)[0].SavedPlan.Digest)
	require.Equal(t, task.StatusCompleted, f.rec.last().Transition.Status)
}

func TestPlanStaleFailsTheTask(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	stale := task.Error{Code: task.CodePlanStale, Message: "the approved plan was not applied"}
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).Return(activities.ApplyOutput{},
		temporal.NewNonRetryableApplicationError(stale.Message, stale.Code, nil, stale)).Once()
	f.happy()
	f.env.RegisterDelayedCallback(func() {
		f.decide(t, "a", task.Decision{Approve: true, By: "ops-b"})
	}, time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, approvalInput(task.ApprovalRequired))
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &appErr))
	require.Equal(t, task.CodePlanStale, appErr.Type())
	require.Equal(t, task.StatusFailed, f.rec.last().Transition.Status)
	require.Equal(t, 1, countCalls(f.activityCalls(), activities.NameApply), "a stale plan is not retried")
}

func TestTimeoutStillBoundsTheRunAroundTheWait(t *testing.T) {
	f := newFixture(t)
	// Planning takes 40 minutes of a one-hour timeout; the wait is long;
	// the apply then hangs: the timeout fires 20 minutes into it.
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).After(40*time.Minute).Return(waitingPlan, nil).Once()
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).After(10*time.Hour).Return(activities.ApplyOutput{}, nil).Once()
	f.happy()
	in := approvalInput(task.ApprovalRequired)
	in.Params.Timeout = task.Duration(time.Hour)
	var approvedAt time.Time
	f.env.RegisterDelayedCallback(func() {
		approvedAt = f.env.Now()
		f.decide(t, "a", task.Decision{Approve: true, By: "ops-b"})
	}, 5*time.Hour)
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &appErr), "got %v", f.env.GetWorkflowError())
	require.Equal(t, task.CodeTimeout, appErr.Type())
	ended := *f.rec.last().Transition.CompletedAt
	require.WithinDuration(t, approvedAt.Add(20*time.Minute), ended, 2*time.Minute)
}

func TestDecisionSignalFromParent(t *testing.T) {
	f := newFixture(t)
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	f.happy()
	f.env.RegisterWorkflowWithOptions(approvingParent, workflow.RegisterOptions{Name: "test.ApprovingParent"})
	f.env.ExecuteWorkflow("test.ApprovingParent", approvalInput(task.ApprovalRequired))
	require.NoError(t, f.env.GetWorkflowError())
	var out task.Output
	require.NoError(t, f.env.GetWorkflowResult(&out))
	require.Equal(t, task.StatusCompleted, out.Status)
	last := f.rec.last()
	require.Equal(t, "parent-robot", last.Transition.Approval.ApprovedBy)
	require.Equal(t, "plan has 1 replace", last.Transition.Approval.Comment)
}

// approvingParent embeds a task, hears that it waits, and approves it by
// signal.
func approvingParent(ctx workflow.Context, in task.Input) (task.Output, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: in.ID, TaskQueue: task.ControlPlaneTaskQueue})
	child := workflow.ExecuteChildWorkflow(cctx, task.WorkflowType, in)
	var req task.ApprovalRequest
	workflow.GetSignalChannel(ctx, task.SignalApprovalRequest).Receive(ctx, &req)
	if req.TaskID != in.ID || req.Plan.Replace != 1 {
		return task.Output{}, errors.New("unexpected approval request")
	}
	d := task.Decision{Approve: true, By: "parent-robot", At: workflow.Now(ctx), Comment: "plan has 1 replace"}
	if err := child.SignalChildWorkflow(ctx, task.SignalDecision, d).Get(ctx, nil); err != nil {
		return task.Output{}, err
	}
	var out task.Output
	err := child.Get(ctx, &out)
	return out, err
}

func TestDecisionSignalWhileNotWaitingIsIgnored(t *testing.T) {
	f := newFixture(t)
	// The signal arrives while the task plans (a delayed callback fired only
	// when the test clock skipped ahead, which a run of mocked activities
	// may never do); this mock comes first, so plan's runs once through it.
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.StepInput) (activities.PlanOutput, error) {
			f.env.SignalWorkflow(task.SignalDecision, task.Decision{Approve: false, By: "early-bot"})
			return activities.PlanOutput{HasChanges: true, PlannedChanges: 5, Add: 5}, nil
		}).Once()
	// The apply lasts until the refusal's log line is recorded: a line the
	// signal's handler records as the task ends could be cut off by its end.
	f.env.OnActivity(activities.NameApply, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.ApplyOutput, error) {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !hasLog(f, `decision signal from "early-bot" ignored`); {
				time.Sleep(time.Millisecond)
			}
			return activities.ApplyOutput{ChangesDone: 5, CleanedUp: in.CleanUp}, nil
		}).Once()
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, approvalInput(task.ApprovalRequired))
	require.NoError(t, f.env.GetWorkflowError(), "happy's plan has no summary: nothing to approve, it applies")
	require.True(t, hasLog(f, `decision signal from "early-bot" ignored`))
}
