package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/task"
)

// What the Temporal Web UI shows while a task runs: a one-line summary on
// each activity (which Terraform command, and for apply or destroy the
// plan's counts) and the workflow's current details (status, step, progress,
// what it waits for). Both are user metadata: they add no command, so
// histories recorded without them replay unchanged. Like every payload they
// are encrypted; the UI shows them through the codec.

// withSummary returns ctx whose next activity carries summary.
func withSummary(ctx workflow.Context, summary string) workflow.Context {
	o := workflow.GetActivityOptions(ctx)
	o.Summary = summary
	return workflow.WithActivityOptions(ctx, o)
}

// stepSummary is the activity summary of a step, such as
// "terraform apply: 3 to add, 1 to change, 0 to destroy".
func (r *run) stepSummary(step task.Step) string {
	counts := func(p activities.PlanOutput) string {
		return fmt.Sprintf("%d to add, %d to change, %d to destroy", p.Add, p.Change, p.Remove)
	}
	switch step {
	case task.StepInstalling:
		if v := r.in.Params.TerraformVersion; v != "" {
			return "install terraform " + v
		}
		return "install terraform (the runner's)"
	case task.StepInitializing:
		return "terraform init"
	case task.StepPlanning:
		switch r.in.Params.EffectiveAction() {
		case task.ActionDestroy:
			return "terraform plan -destroy"
		case task.ActionPlan:
			return "terraform plan (plan only)"
		}
		return "terraform plan"
	case task.StepApplying:
		return "terraform apply: " + counts(r.plan)
	case task.StepDestroying:
		return "terraform destroy: " + counts(r.plan)
	}
	return string(step)
}

// details is the workflow's current details, in Temporal markdown.
func (r *run) details() string {
	s := r.state
	if s.Status == task.StatusWaitingApproval && s.Plan != nil && s.Approval != nil && s.Approval.ExpiresAt != nil {
		return r.waitingDetails(*s.Plan, *s.Approval.ExpiresAt)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**, %d%%", s.Status, s.Progress)
	if s.CurrentStep != "" {
		fmt.Fprintf(&b, ", step %s (%d of %d)", s.CurrentStep, s.StepsCompleted+1, s.TotalSteps)
	}
	b.WriteString("\n\n")
	if s.WaitingFor != "" {
		fmt.Fprintf(&b, "- waiting for: %s\n", s.WaitingFor)
	}
	if s.Host != "" {
		fmt.Fprintf(&b, "- host: %s (attempt %d)\n", s.Host, s.Attempt)
	}
	if s.PlannedChanges > 0 {
		fmt.Fprintf(&b, "- changes: %d of %d done\n", s.ChangesDone, s.PlannedChanges)
	}
	if a := s.Approval; a != nil && a.ApprovedBy != "" {
		fmt.Fprintf(&b, "- plan approved by: %s\n", a.ApprovedBy)
	}
	if a := s.Approval; a != nil && a.RejectedBy != "" {
		fmt.Fprintf(&b, "- plan rejected by: %s\n", a.RejectedBy)
	}
	if s.CancelledBy != "" {
		fmt.Fprintf(&b, "- cancelled by: %s\n", s.CancelledBy)
	}
	if p := s.Policy; p != nil {
		fmt.Fprintf(&b, "- policy check %s: %s\n", p.Stage, p.Decision)
		for _, res := range p.Results {
			fmt.Fprintf(&b, "  - %s `%s` (v%d): %s\n", res.Rule, res.Policy, res.Version, res.Message)
		}
	}
	if s.Result != nil && s.Result.Error != nil {
		fmt.Fprintf(&b, "- error: %s\n", s.Result.Error.Code)
	}
	return b.String()
}
