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
type PlanSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Replace int `json:"replace"`
}

// HasChanges reports whether applying the plan would change any resource.
func (p PlanSummary) HasChanges() bool { return p.Add+p.Change+p.Destroy+p.Replace > 0 }

// Destructive reports whether the plan deletes or replaces a resource.
func (p PlanSummary) Destructive() bool { return p.Destroy+p.Replace > 0 }

// Decision is a person's verdict on a waiting task's plan. It reaches the
// workflow as the UpdateDecision update (from the API) or the
// SignalDecision signal (from a parent workflow), with the same payload.
type Decision struct {
	Approve bool      `json:"approve"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// Names of the decision's update and signal.
const (
	UpdateDecision = "decision"
	SignalDecision = "decision"
)

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
