package workflows

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/task"
)

func proofBox(t *testing.T) *master.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	b, err := master.New(key)
	require.NoError(t, err)
	return b
}

// A Temporal client that can reach the namespace but holds no key forges
// decisions: an update without a proof is refused by its validator, one
// signed with another key too, a signal without a proof is ignored with a
// warning; the task goes on waiting, and the API's signed decision applies
// the plan, recorded as the signer named it.
func TestDecisionsWithoutProofAreRefused(t *testing.T) {
	box := proofBox(t)
	f := newFixtureWith(t, Options{CheckDecision: box.CheckDecision})
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	applied := f.applies()
	f.happy()
	in := approvalInput(task.ApprovalRequired)
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var forged, otherKey, moved, signed *outcome
	var during task.State
	f.env.RegisterDelayedCallback(func() {
		forged = f.decide(t, "forged", task.Decision{Approve: true, By: "mallory", At: at})
		otherKey = f.decide(t, "other-key", proofBox(t).Sign(in.ID, task.Decision{Approve: true, By: "mallory", At: at}))
		// A proof for another task does not move to this one.
		moved = f.decide(t, "moved", box.Sign("task-other", task.Decision{Approve: true, By: "ops-b", At: at}))
		f.env.SignalWorkflow(task.SignalDecision, task.Decision{Approve: true, By: "mallory", At: at})
	}, time.Minute)
	f.env.RegisterDelayedCallback(func() {
		during = f.query(t)
		signed = f.decide(t, "signed", box.Sign(in.ID, task.Decision{Approve: true, By: "ops-b", At: at, Comment: "fine"}))
	}, 2*time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	require.NoError(t, f.env.GetWorkflowError())
	for name, o := range map[string]*outcome{"no proof": forged, "another key's proof": otherKey, "another task's proof": moved} {
		require.True(t, o.rejected, "%s: the update was accepted", name)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(o.err, &appErr), "%s: %v", name, o.err)
		require.Equal(t, errNoProof, appErr.Type(), name)
	}
	require.Equal(t, task.StatusWaitingApproval, during.Status, "a forged decision moved the task")
	require.True(t, signed.accepted)
	require.NoError(t, signed.err)
	require.Len(t, *applied, 1)
	last := f.rec.last()
	require.Equal(t, task.StatusCompleted, last.Transition.Status)
	require.Equal(t, "ops-b", last.Transition.Approval.ApprovedBy)
	require.True(t, f.logged(`decision signal naming "mallory" ignored: it carries no valid proof`), "no warning for the forged signal")
}

// A parent workflow decides by signal with the same proof: signed, its
// decision applies the plan; a tampered one (approve turned on) does not.
func TestSignedSignalDecides(t *testing.T) {
	box := proofBox(t)
	f := newFixtureWith(t, Options{CheckDecision: box.CheckDecision})
	f.env.OnActivity(activities.NamePlan, mock.Anything, mock.Anything).Return(waitingPlan, nil).Once()
	applied := f.applies()
	f.happy()
	in := approvalInput(task.ApprovalRequired)
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.env.RegisterDelayedCallback(func() {
		tampered := box.Sign(in.ID, task.Decision{Approve: false, By: "parent", At: at})
		tampered.Approve = true
		f.env.SignalWorkflow(task.SignalDecision, tampered)
	}, time.Minute)
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(task.SignalDecision, box.Sign(in.ID, task.Decision{Approve: true, By: "parent", At: at}))
	}, 2*time.Minute)
	f.env.ExecuteWorkflow(task.WorkflowType, in)
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, *applied, 1)
	require.Equal(t, "parent", f.rec.last().Transition.Approval.ApprovedBy)
	require.True(t, f.logged(`decision signal naming "parent" ignored`), "the tampered signal was not refused")
}

// logged reports whether a recorded log line holds s.
func (f *fixture) logged(s string) bool {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	for _, r := range f.rec.records {
		for _, l := range r.Logs {
			if strings.Contains(l.Message, s) {
				return true
			}
		}
	}
	return false
}
