package workflows

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/task"
)

func TestDriftGoesIntoTheResultAndNamesTheRemediation(t *testing.T) {
	for _, remediate := range []string{"", task.RemediateApproval} {
		f := newFixture(t)
		f.env.OnActivity(activities.NameClaim, mock.Anything, mock.Anything).Return(
			activities.ClaimOutput{Host: "h1", HostQueue: task.HostTaskQueue("default", "local", "h1")}, nil)
		f.env.OnActivity(activities.NameInstall, mock.Anything, mock.Anything).Return(activities.InstallOutput{}, nil)
		f.env.OnActivity(activities.NameInit, mock.Anything, mock.Anything).Return(nil)
		drift := &task.Drift{Drifted: true, Resources: []task.DriftResource{{Address: "time_rotating.key", Actions: []string{"delete"}, Source: "drift"}}}
		f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(
			activities.PlanOutput{HasChanges: true, PlannedChanges: 1, Add: 1, Drift: drift}, nil)
		f.env.OnActivity(activities.NameCleanup, mock.Anything, mock.Anything).Return(nil)
		in := input(task.ActionPlan)
		in.Params.DetectDrift, in.Params.Remediate, in.Params.Workspace = true, remediate, in.ID // its own: no queue
		in.Metadata = map[string]any{"schedule_id": "sched-1", "team": "infra"}
		f.env.ExecuteWorkflow(task.WorkflowType, in)
		require.NoError(t, f.env.GetWorkflowError())
		var out task.Output
		require.NoError(t, f.env.GetWorkflowResult(&out))
		require.NotNil(t, out.Result.Drift)
		require.True(t, out.Result.Drift.Drifted)
		require.Equal(t, "time_rotating.key", out.Result.Drift.Resources[0].Address)

		last := f.rec.last()
		require.Equal(t, task.StatusCompleted, last.Transition.Status)
		require.Equal(t, out.Result.Drift, last.Transition.Result.Drift)
		for _, rec := range f.rec.records {
			if rec.Transition.Status != task.StatusCompleted {
				require.Nil(t, rec.Remediation, "only the completed transition starts a remediation")
			}
		}
		if remediate == "" {
			require.Nil(t, last.Remediation)
			require.Empty(t, out.Result.Drift.RemediationTaskID)
			continue
		}
		rem := last.Remediation
		require.NotNil(t, rem)
		require.Equal(t, "task-abc-remediation", rem.ID)
		require.Equal(t, rem.ID, out.Result.Drift.RemediationTaskID)
		require.Equal(t, task.ActionApply, rem.Params.Action)
		require.Equal(t, task.ApprovalRequired, rem.Params.Approval)
		require.False(t, rem.Params.DetectDrift)
		require.Equal(t, in.ID, rem.Params.Workspace)
		require.Equal(t, "", rem.ScheduleID)
		require.Equal(t, map[string]any{"team": "infra", "remediates": "task-abc"}, rem.Metadata)
	}
}

func TestRemediationNameKeepsWholeCharacters(t *testing.T) {
	in := input(task.ActionPlan)
	in.Params.Remediate = task.RemediateApproval
	// "remediate drift: " is 17 bytes; 238 ASCII bytes then "é" (2 bytes)
	// puts the character across the 256-byte limit.
	in.Name = strings.Repeat("x", 238) + "é" + "tail"
	out := remediationInput(in, &task.Drift{Drifted: true}, time.Unix(0, 0))
	require.NotNil(t, out)
	require.True(t, utf8.ValidString(out.Name), "name %q", out.Name)
	require.LessOrEqual(t, len(out.Name), 256)
	require.Equal(t, "remediate drift: "+strings.Repeat("x", 238), out.Name)
	short := remediationInput(input(task.ActionPlan), &task.Drift{Drifted: true}, time.Unix(0, 0))
	require.Nil(t, short) // no remediate: no remediation task
}
