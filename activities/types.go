package activities

import (
	"github.com/terratask/terratask/task"
)

// StepInput is the argument of every runner activity.
type StepInput struct {
	Task task.Input `json:"task"`
	// Run counts the times the task's runner block started (from 1); a host
	// failure restarts the block on another host with Run+1.
	Run int `json:"run"`
	// TerraformPath is the binary chosen by Install, passed to later steps.
	TerraformPath string `json:"terraform_path,omitempty"`
	// SavedPlan, on an Apply, is the approved plan it must apply: exactly
	// that plan file, never a new plan (see Runner.Apply).
	SavedPlan *SavedPlan `json:"saved_plan,omitempty"`
	// CleanUp, on an Apply, asks it to remove the task's work dir once it
	// succeeded (the task ends with it): no Cleanup activity needed.
	CleanUp bool `json:"clean_up,omitempty"`
	// Install, on a Claim, asks the claiming host to run the installing
	// step too (see Runner.Claim).
	Install bool `json:"install,omitempty"`
	// AvoidHosts, on a Claim, are the hosts this task's workflow declared
	// lost in earlier runs of its block, in the order they were lost: they
	// leave the claim to another host of the runner for a few attempts
	// (see Runner.Claim).
	AvoidHosts []string `json:"avoid_hosts,omitempty"`
	// PolicyPlan, on a Plan, asks it to keep Terraform's JSON of the plan,
	// masked and sealed with the org's key, for the control plane's
	// post_plan policy check; a plan with changes may then wait for
	// approval whatever the task's approval mode, so its plan file is kept
	// sealed too.
	PolicyPlan bool `json:"policy_plan,omitempty"`
	// PolicyApproval, on a Plan, says a policy asked for a person's
	// approval: a plan with changes waits, so its plan file is kept sealed.
	PolicyApproval bool `json:"policy_approval,omitempty"`
}

// SavedPlan names an approved plan by the SHA-256 of its plan file. Its
// host keeps it in the task's work dir; the store keeps it sealed, so any
// host of the runner can apply it.
type SavedPlan struct {
	Digest string `json:"digest"`
}

// ClaimOutput tells the workflow which host took the task.
type ClaimOutput struct {
	Host      string `json:"host"`
	HostQueue string `json:"host_queue"`
	// TerraformPath and Version are the binary of the installing step,
	// when the claim ran it.
	TerraformPath string `json:"terraform_path,omitempty"`
	Version       string `json:"version,omitempty"`
}

// InstallOutput is the Terraform binary a host will use for the task.
type InstallOutput struct {
	TerraformPath string `json:"terraform_path"`
	Version       string `json:"version"`
	// Engine is the task's engine (terraform or opentofu) the binary is of.
	Engine task.Engine `json:"engine,omitempty"`
}

// PlanOutput summarises a saved plan.
type PlanOutput struct {
	HasChanges     bool `json:"has_changes"`
	PlannedChanges int  `json:"planned_changes"`
	Add            int  `json:"add"`
	Change         int  `json:"change"`
	Remove         int  `json:"remove"`
	// Summary counts the plan's changes from its JSON form (replaces and
	// output changes apart); the approval decision is made on it.
	Summary task.PlanSummary `json:"summary"`
	// Digest is the hex SHA-256 of the plan file.
	Digest string `json:"digest,omitempty"`
	// Sealed reports that the plan file is kept sealed in the store, so
	// another host can apply it (done when the plan waits for approval).
	Sealed bool `json:"sealed,omitempty"`
	// Drift is what a detect_drift plan found (nil otherwise).
	Drift *task.Drift `json:"drift,omitempty"`
}

// ApplyOutput is the outcome of applying the saved plan.
type ApplyOutput struct {
	ChangesDone int `json:"changes_done"`
	// Outputs are the root module outputs, sensitive ones redacted.
	Outputs map[string]any `json:"outputs"`
	// CleanedUp reports that the apply, asked to with
	// StepInput.CleanUp, removed the task's work dir as Cleanup does.
	CleanedUp bool `json:"cleaned_up,omitempty"`
}

// Activity names, registered once and used by the workflow.
const (
	NameClaim   = "terratask.Claim"
	NameInstall = "terratask.Install"
	NameInit    = "terratask.Init"
	NamePlan    = "terratask.Plan"
	NameApply   = "terratask.Apply"
	NameCleanup = "terratask.Cleanup"
	// NameForceStop kills every process of a task on its host (force cancel).
	NameForceStop = "terratask.ForceStop"
)
