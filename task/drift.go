package task

// Drift is what a drift-detecting plan (detect_drift) found: changes made
// outside Terraform that its refresh saw (Terraform's resource_drift) and
// the changes its plan would make to bring the real world back to the
// configuration. It is in the result of a plan-only task with
// detect_drift.
type Drift struct {
	Drifted   bool            `json:"drifted"`
	Resources []DriftResource `json:"resources"`
	// RemediationTaskID names the apply task started because the drift
	// was found (remediate: "approval").
	RemediationTaskID string `json:"remediation_task_id,omitempty"`
}

// DriftResource is one resource that drifted or that the plan changes.
type DriftResource struct {
	Address string `json:"address"`
	// Actions are Terraform's: "update", "delete", "create", ["delete",
	// "create"] for a replace.
	Actions []string `json:"actions"`
	// ChangedAttributes are the top-level attributes that differ (values
	// are never shown: they may be sensitive).
	ChangedAttributes []string `json:"changed_attributes"`
	// Source says where the difference is: "drift" (the real world moved
	// since the last apply) or "plan" (the plan changes it to match the
	// configuration).
	Source string `json:"source"`
}

// Remediation modes of a drift-detecting task.
const (
	// RemediateApproval starts an apply task of the same template that
	// waits for approval when drift was found.
	RemediateApproval = "approval"
)
