package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/task"
)

var pinnedSet = []task.PolicyRef{{Name: "limits", Version: 3, SHA256: "abc"}}

// answer returns a policy stub deciding per stage.
func answer(readsPlan bool, decisions map[string]string) func(controlplane.PolicyInput) controlplane.PolicyOutput {
	return func(in controlplane.PolicyInput) controlplane.PolicyOutput {
		d := decisions[in.Stage]
		if d == "" {
			d = task.PolicyAllow
		}
		c := &task.PolicyCheck{Decision: d, Stage: in.Stage, Policies: pinnedSet, Results: []task.PolicyResult{}}
		rule := map[string]string{task.PolicyDeny: task.RuleDeny, task.PolicyRequireApproval: task.RuleRequireApproval}[d]
		if rule != "" {
			c.Results = append(c.Results, task.PolicyResult{Policy: "limits", Version: 3, Rule: rule, Message: in.Stage + " says " + d})
		}
		if d == task.PolicyError {
			c.Error = "boom"
		}
		return controlplane.PolicyOutput{Check: c, ReadsPlan: readsPlan}
	}
}

func taskErrorOf(t *testing.T, err error) task.Error {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "error %v", err)
	var te task.Error
	require.NoError(t, appErr.Details(&te))
	return te
}

func TestPrePlanDenyStartsNothing(t *testing.T) {
	f := newFixture(t)
	f.policy = answer(true, map[string]string{task.PolicyPrePlan: task.PolicyDeny})
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	te := taskErrorOf(t, f.env.GetWorkflowError())
	require.Equal(t, task.CodePolicyDenied, te.Code)
	require.Contains(t, te.Message, "pre_plan says deny")
	require.Equal(t, "pre_plan", te.Details["stage"])
	require.Empty(t, f.activityCalls(), "a task denied before its plan claims no runner")
	require.Len(t, f.checks, 1)
	last := f.rec.last()
	require.Equal(t, task.StatusFailed, last.Transition.Status)
	require.Equal(t, task.PolicyDeny, last.Transition.Policy.Decision)
}

func TestPolicyErrorFailsClosed(t *testing.T) {
	f := newFixture(t)
	f.policy = answer(false, map[string]string{task.PolicyPrePlan: task.PolicyError})
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	te := taskErrorOf(t, f.env.GetWorkflowError())
	require.Equal(t, task.CodePolicyError, te.Code)
	require.Contains(t, te.Message, "boom")
	require.Empty(t, f.activityCalls())
}

func TestPostPlanDenyAppliesNothing(t *testing.T) {
	f := newFixture(t)
	f.policy = answer(true, map[string]string{task.PolicyPostPlan: task.PolicyDeny})
	var planIn []activities.StepInput
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.PlanOutput, error) {
			planIn = append(planIn, in)
			return waitingPlan, nil
		}).Once()
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	te := taskErrorOf(t, f.env.GetWorkflowError())
	require.Equal(t, task.CodePolicyDenied, te.Code)
	require.Equal(t, "post_plan", te.Details["stage"])
	require.NotContains(t, f.activityCalls(), activities.NameApply)
	require.Len(t, planIn, 1)
	require.True(t, planIn[0].PolicyPlan, "the plan keeps its JSON for the post_plan check")
	require.Len(t, f.checks, 2)
	post := f.checks[1]
	require.Equal(t, task.PolicyPostPlan, post.Stage)
	require.Equal(t, pinnedSet, post.Pinned, "post_plan evaluates the versions pre_plan pinned")
	require.Equal(t, waitingPlan.Digest, post.Digest)
}

func TestNoPostPlanCheckWhenNoPolicyReadsThePlan(t *testing.T) {
	f := newFixture(t)
	f.policy = answer(false, nil)
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, f.checks, 1)
	require.Equal(t, task.PolicyAllow, f.rec.last().Transition.Policy.Decision)
}

func TestNoPoliciesChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, f.checks, 1)
	f.rec.mu.Lock()
	for _, rec := range f.rec.records {
		require.Nil(t, rec.Transition.Policy)
	}
	f.rec.mu.Unlock()
	require.Equal(t, []string{activities.NameClaim, activities.NameInit, activities.NamePlan, activities.NameApply}, f.activityCalls())
}

func TestRequireApprovalWaitsEvenWithApprovalNone(t *testing.T) {
	f := newFixture(t)
	f.policy = answer(true, map[string]string{task.PolicyPostPlan: task.PolicyRequireApproval})
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	applied := f.applies()
	f.happy()
	var waiting task.State
	var won *outcome
	f.env.RegisterDelayedCallback(func() {
		waiting = f.query(t)
		won = f.decide(t, "d1", task.Decision{Approve: true, By: "ops-b"})
	}, time.Hour)
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, task.StatusWaitingApproval, waiting.Status)
	require.Equal(t, task.PolicyRequireApproval, waiting.Policy.Decision)
	require.Equal(t, []string{"post_plan says require_approval"}, waiting.Policy.Messages(task.RuleRequireApproval))
	require.NoError(t, won.err)
	require.Len(t, *applied, 1)
	require.Equal(t, &activities.SavedPlan{Digest: waitingPlan.Digest}, (*applied)[0].SavedPlan)
}

func TestRequireApprovalNeverWaitsOnANoChangePlan(t *testing.T) {
	f := newFixture(t)
	f.policy = answer(false, map[string]string{task.PolicyPrePlan: task.PolicyRequireApproval})
	var planIn activities.StepInput
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StepInput) (activities.PlanOutput, error) {
			planIn = in
			return activities.PlanOutput{Digest: "nochange"}, nil
		}).Once()
	f.happy()
	f.env.ExecuteWorkflow(task.WorkflowType, input(""))
	require.NoError(t, f.env.GetWorkflowError())
	require.True(t, planIn.PolicyApproval, "the plan step knows its plan may wait")
	require.NotContains(t, f.rec.statuses(), task.StatusWaitingApproval)
}
