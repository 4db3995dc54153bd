package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/task"
)

// Plan review and approval. A task whose approval mode makes its plan wait
// (task.Approval.Waits) holds after the planning step: no activity runs, the
// host keeps the work dir (and the store a sealed copy of the plan file),
// and the workspace stays the task's. The workflow waits on a durable timer
// of the approval timeout for a decision: the task.UpdateDecision update
// (from the API; its validator refuses every decision but the first, and
// any while the task does not wait) or the task.SignalDecision signal (from
// a parent workflow, which hears task.SignalApprovalRequest when the wait
// starts). Approved, exactly the saved plan is applied, on its host or,
// when that host is gone, on another host of the runner. Rejected or
// expired, the task ends rejected. A cancel ends it at once. The task's own
// timeout does not run while it waits.

// versionApproval guards the approval wait: histories recorded before it
// replay without it.
const versionApproval = "approval"

// proven reports whether a signalled decision carries a valid proof. The
// check is a side effect (recorded), so a replay with other keys decides as
// the run did.
func (r *run) proven(ctx workflow.Context, d task.Decision) bool {
	check := r.checkDecision
	var ok bool
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		return check == nil || check(r.in.ID, d)
	}).Get(&ok)
	return err == nil && ok
}

// Error types of a refused decision: the API answers them with 409.
const (
	errNotWaiting = "not_waiting_approval"
	// errNoProof refuses a decision without a valid proof (versionProof).
	errNoProof = "decision_without_proof"
	errDecided = "already_decided"
)

// approvalRun is the workflow's side of the review.
type approvalRun struct {
	// waiting is set while the workflow waits for a decision.
	waiting bool
	// decision is the first decision that arrived while waiting; applied
	// reports that the wait took it (rather than a cancel or the expiry).
	decision *task.Decision
	applied  bool
	// settled is set once the decision's outcome is recorded, so the
	// update that carried it can answer with it.
	settled bool
	// saved is the approved plan; later blocks apply it and never plan.
	saved *activities.SavedPlan
}

// handleDecisions registers the decision update. Its validator refuses a
// decision unless the task waits for one and none has arrived yet.
func (r *run) handleDecisions(ctx workflow.Context) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, task.UpdateDecision,
		func(ctx workflow.Context, d task.Decision) (task.State, error) {
			if r.approval.decision != nil || !r.approval.waiting {
				// Another decision won between validation and here.
				return r.state, notWaiting(r.state.Status, errDecided)
			}
			r.approval.decision = &d
			if err := workflow.Await(ctx, func() bool { return r.approval.settled }); err != nil {
				return r.state, err
			}
			if !r.approval.applied {
				return r.state, notWaiting(r.state.Status, errNotWaiting)
			}
			return r.state, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(d task.Decision) error {
			if strings.TrimSpace(d.By) == "" {
				return temporal.NewApplicationError("a decision must name who decides", "bad_decision")
			}
			if r.proof && r.checkDecision != nil && !r.checkDecision(r.in.ID, d) {
				return temporal.NewApplicationError("a decision must come from the terratask API: it carries no valid proof", errNoProof)
			}
			switch {
			case r.approval.decision != nil:
				return notWaiting(r.state.Status, errDecided)
			case !r.approval.waiting || r.state.Status != task.StatusWaitingApproval:
				return notWaiting(r.state.Status, errNotWaiting)
			}
			return nil
		}})
}

// notWaiting is a refused decision; its details carry the task's status.
func notWaiting(st task.Status, kind string) error {
	msg := "the task is " + string(st) + ", not waiting for approval"
	if kind == errDecided {
		msg = "the task's plan was already decided on"
	}
	return temporal.NewApplicationError(msg, kind, string(st))
}

// onDecisionSignal takes a decision sent as a signal (by a parent
// workflow): the first one while the task waits counts; any other is
// logged and ignored.
func (r *run) onDecisionSignal(ctx workflow.Context, d task.Decision) {
	if r.proof && !r.proven(ctx, d) {
		if !r.state.Status.Terminal() {
			r.transition(ctx, func(*task.State) {}, logLine(task.LevelWarn,
				fmt.Sprintf("decision signal naming %q ignored: it carries no valid proof (decisions come from the API, or are signed with the secret key)", d.By)))
		}
		return
	}
	if r.approval.waiting && r.approval.decision == nil && strings.TrimSpace(d.By) != "" {
		r.approval.decision = &d
		return
	}
	if r.state.Status.Terminal() {
		return
	}
	r.transition(ctx, func(*task.State) {}, logLine(task.LevelWarn,
		fmt.Sprintf("decision signal from %q ignored: the task is %s and does not wait for one", d.By, r.state.Status)))
}

// awaitHandlers lets a decision's update answer before the workflow ends:
// its outcome is recorded by now.
func (r *run) awaitHandlers(ctx workflow.Context) {
	r.approval.settled = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
}

// afterPlan decides whether the plan waits, and waits. On approval it
// points the apply at the saved plan.
func (r *run) afterPlan(ctx workflow.Context, plan activities.PlanOutput, in *activities.StepInput) error {
	mode := r.in.Params.EffectiveApproval()
	// A policy's require_approval makes a plan with changes wait, whatever
	// the task's mode (a plan that changes nothing never waits).
	byPolicy := r.policy.approval && (plan.Summary.HasChanges() || plan.Summary.Outputs > 0)
	if (mode == task.ApprovalNone && !byPolicy) || r.in.Params.EffectiveAction() == task.ActionPlan {
		return nil
	}
	if workflow.GetVersion(ctx, versionApproval, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if !byPolicy && !mode.Waits(plan.Summary) {
		why := "it changes nothing"
		if plan.Summary.HasChanges() || plan.Summary.Outputs > 0 {
			why = "it deletes and replaces nothing"
		}
		r.transition(ctx, func(*task.State) {}, logLine(task.LevelInfo,
			fmt.Sprintf("the plan (%s) needs no approval under approval %s: %s", counts(plan.Summary), mode, why)))
		return nil
	}
	if err := r.awaitApproval(ctx, plan); err != nil {
		return err
	}
	r.approval.saved = &activities.SavedPlan{Digest: plan.Digest}
	in.SavedPlan = r.approval.saved
	r.stepIn = *in
	return nil
}

// approvalReason says why a plan waits: the task's approval mode, or a
// policy and its messages.
func (r *run) approvalReason() string {
	if r.policy.approval && r.state.Policy != nil {
		msgs := r.state.Policy.Messages(task.RuleRequireApproval)
		if len(msgs) > 0 {
			return "a policy requires it: " + strings.Join(msgs, "; ")
		}
	}
	return "approval " + string(r.in.Params.EffectiveApproval())
}

// approvalTimeout is the task's approval_timeout, else the server's default,
// else task.DefaultApprovalTimeout.
func (r *run) approvalTimeout() time.Duration {
	for _, d := range []task.Duration{r.in.Params.ApprovalTimeout, r.in.ApprovalWait} {
		if d > 0 {
			return time.Duration(d)
		}
	}
	return task.DefaultApprovalTimeout
}

// awaitApproval waits for a decision on the plan: nil when approved, an
// error that ends the task otherwise (rejected, expired, cancelled).
func (r *run) awaitApproval(ctx workflow.Context, plan activities.PlanOutput) error {
	wait := r.approvalTimeout()
	expires := workflow.Now(ctx).UTC().Add(wait)
	r.pauseTimeout(ctx)
	r.approval.waiting = true
	r.transition(ctx, func(s *task.State) {
		s.Status = task.StatusWaitingApproval
		s.StepsCompleted = len(r.steps) - 1
		s.WaitingFor = "approval"
		s.Plan = &plan.Summary
		s.Approval = &task.ApprovalState{ExpiresAt: &expires}
	}, logLine(task.LevelInfo, fmt.Sprintf("the plan (%s) waits for approval (%s) until %s; approve or reject it with PUT /api/v1/tasks/%s/approve or /reject",
		counts(plan.Summary), r.approvalReason(), expires.Format(time.RFC3339), r.in.ID)))
	r.notifyParent(ctx, plan.Summary, expires)

	_, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return r.approval.decision != nil })
	r.approval.waiting = false
	if err != nil || ctx.Err() != nil {
		// A cancel wins over a decision that arrived with it.
		return temporal.NewCanceledError()
	}
	// A decision that arrived with the expiry still counts: it was accepted.
	d := r.approval.decision
	now := workflow.Now(ctx).UTC()
	if d == nil {
		msg := fmt.Sprintf("nobody approved or rejected the plan within its approval timeout of %s", wait)
		return temporal.NewNonRetryableApplicationError(msg, task.CodeApprovalTimeout, nil, task.Error{
			Code: task.CodeApprovalTimeout, Message: msg,
			Details: map[string]any{"approval_timeout": wait.String(), "expired_at": expires.Format(time.RFC3339)},
		})
	}
	r.approval.applied = true
	at := d.At.UTC()
	if d.At.IsZero() {
		at = now
	}
	who := d.By
	if d.Comment != "" {
		who += " (comment: " + d.Comment + ")"
	}
	if !d.Approve {
		r.state.Approval = &task.ApprovalState{ExpiresAt: &expires, RejectedBy: d.By, RejectedAt: &at, Comment: d.Comment}
		msg := "the plan was rejected by " + who
		return temporal.NewNonRetryableApplicationError(msg, task.CodeRejected, nil, task.Error{
			Code: task.CodeRejected, Message: msg, Details: map[string]any{"rejected_by": d.By},
		})
	}
	r.transition(ctx, func(s *task.State) {
		s.Status = task.StatusRunning
		s.WaitingFor = ""
		s.Approval = &task.ApprovalState{ExpiresAt: &expires, ApprovedBy: d.By, ApprovedAt: &at, Comment: d.Comment}
	}, logLine(task.LevelInfo, "the plan was approved by "+who+"; applying exactly that plan"))
	r.approval.settled = true
	r.resumeTimeout(ctx)
	return nil
}

// pauseTimeout stops the task's timeout timer for the approval wait,
// keeping what it had left.
func (r *run) pauseTimeout(ctx workflow.Context) {
	if r.stopTimeout == nil {
		return
	}
	r.stopTimeout()
	r.stopTimeout = nil
	r.timeoutLeft -= workflow.Now(ctx).Sub(r.timeoutArmedAt)
}

// resumeTimeout re-arms the task's timeout with what it had left.
func (r *run) resumeTimeout(ctx workflow.Context) {
	if !r.timerArmed || r.stopTimeout != nil || r.timedOut {
		return
	}
	r.armTimeout(ctx, max(r.timeoutLeft, time.Second))
}

// notifyParent tells a parent workflow, if any, that its child waits for a
// decision. It is best effort: a parent may not listen.
func (r *run) notifyParent(ctx workflow.Context, sum task.PlanSummary, expires time.Time) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	req := task.ApprovalRequest{TaskID: r.in.ID, Plan: sum, ExpiresAt: expires}
	if r.policy.approval {
		req.Policy = r.state.Policy
	}
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, parent.RunID, task.SignalApprovalRequest, req).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("telling the parent workflow the task waits for approval", "error", err)
	}
}

// waitingDetails is what the Temporal Web UI shows of a waiting task.
func (r *run) waitingDetails(sum task.PlanSummary, expires time.Time) string {
	who := "an operator or admin key of org `" + r.in.Org + "` (not a key bound to an agent"
	switch {
	case len(r.in.Authors) > 0:
		who += "; an operator key other than `" + strings.Join(r.in.Authors, "`, `") + "`, which wrote the template of the schedule that started it"
	case r.in.CreatedBy != "":
		who += "; an operator key other than `" + r.in.CreatedBy + "`, which created the task"
	}
	who += ")"
	if r.policy.approval {
		who += ".\n\nA policy requires it: " + strings.Join(r.state.Policy.Messages(task.RuleRequireApproval), "; ")
	}
	return fmt.Sprintf("**Waiting for approval** of its plan: %s.\n\n"+
		"Approve or reject with `PUT /api/v1/tasks/%s/approve` or `/reject`, using %s.\n\n"+
		"Expires %s; the task is then rejected (`approval_timeout`).",
		counts(sum), r.in.ID, who, expires.Format(time.RFC3339))
}

// counts renders a plan summary as Terraform's plan line does.
func counts(s task.PlanSummary) string {
	out := fmt.Sprintf("%d to add, %d to change, %d to destroy", s.Add, s.Change, s.Destroy)
	if s.Replace > 0 {
		out += fmt.Sprintf(" (%d replaced)", s.Replace)
	}
	if s.Outputs > 0 {
		out += fmt.Sprintf(", %d output change(s)", s.Outputs)
	}
	return out
}
