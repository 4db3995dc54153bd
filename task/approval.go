package task

import "time"

// Approval says which of a task's plans wait for a person before they apply.
type Approval string

// Approval modes. A plan with no changes never waits.
const (
	// ApprovalNone applies every plan at once (the default).
	ApprovalNone Approval = "none"
	// ApprovalRequired makes every plan with changes wait.
	ApprovalRequired Approval = "required"
	// ApprovalDestructive makes a plan wait only when it deletes or
	// replaces a resource.
	ApprovalDestructive Approval = "destructive"
)

// Approvals lists every mode.
var Approvals = []Approval{ApprovalNone, ApprovalRequired, ApprovalDestructive}

// EffectiveApproval is the approval mode with its default applied.
func (p Params) EffectiveApproval() Approval {
	if p.Approval == "" {
		return ApprovalNone
	}
	return p.Approval
}

// PlanSummary counts a saved plan's resource changes. A replaced resource
// counts in Replace, and also in Add and Destroy as Terraform counts it.
// Change also counts imports and forgets (resources removed from the state
// but not destroyed). Outputs counts the root module outputs the plan
// creates, changes or removes.
type PlanSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Replace int `json:"replace"`
	Outputs int `json:"outputs"`
}

// HasChanges reports whether applying the plan would change any resource.
func (p PlanSummary) HasChanges() bool { return p.Add+p.Change+p.Destroy+p.Replace > 0 }

// Destructive reports whether the plan deletes or replaces a resource.
func (p PlanSummary) Destructive() bool { return p.Destroy+p.Replace > 0 }

// Waits reports whether a plan with summary p waits for a person under
// approval mode a: never under none; under required when it changes any
// resource or output; under destructive when it deletes or replaces a
// resource. A plan that changes nothing never waits.
func (a Approval) Waits(p PlanSummary) bool {
	switch a {
	case ApprovalRequired:
		return p.HasChanges() || p.Outputs > 0
	case ApprovalDestructive:
		return p.Destructive()
	}
	return false
}

// Valid reports whether a is a known mode ("" is none).
func (a Approval) Valid() bool {
	for _, v := range Approvals {
		if v == a {
			return true
		}
	}
	return a == ""
}

// Decision is a person's verdict on a waiting task's plan. It reaches the
// workflow as the UpdateDecision update (from the API) or the
// SignalDecision signal (from a parent workflow), with the same payload.
type Decision struct {
	Approve bool      `json:"approve"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
	// Proof shows the decision comes from the API (or a worker that holds
	// the secret key): secret.Box.Sign. A task started since the
	// decision-proof version ignores a decision without a valid one.
	Proof string `json:"proof,omitempty"`
}

// Names of the decision's update and signal.
const (
	UpdateDecision = "decision"
	SignalDecision = "decision"
)

// SignalApprovalRequest is the signal a task that starts waiting for
// approval sends to its parent workflow, if it has one, with an
// ApprovalRequest: a parent that embeds the task decides with
// SignalDecision. A parent that does not listen may ignore it.
const SignalApprovalRequest = "terratask.approval-request"

// ApprovalRequest tells a parent workflow that its child task waits for a
// decision on its plan.
type ApprovalRequest struct {
	TaskID    string      `json:"task_id"`
	Plan      PlanSummary `json:"plan"`
	ExpiresAt time.Time   `json:"expires_at"`
	// Policy is the policy check that asked for the approval, if one did.
	Policy *PolicyCheck `json:"policy,omitempty"`
}

// DefaultApprovalTimeout is how long a task waits for a decision when
// neither its approval_timeout nor the server says otherwise.
const DefaultApprovalTimeout = 24 * time.Hour

// ApprovalState is a task's review: when the wait expires, then who decided,
// when, and with what comment.
type ApprovalState struct {
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	ApprovedBy string     `json:"approved_by,omitempty"`
	ApprovedAt *time.Time `json:"approved_at,omitempty"`
	RejectedBy string     `json:"rejected_by,omitempty"`
	RejectedAt *time.Time `json:"rejected_at,omitempty"`
	Comment    string     `json:"comment,omitempty"`
}
