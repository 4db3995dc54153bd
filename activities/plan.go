package activities

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/terratask/terratask/task"
)

// Plan runs `terraform plan -json` into the work dir's saved plan, with the
// task's variables and sensitive variables in a 0600 var file that is
// removed when the plan ends. Values for variables the configuration does not
// declare are only a warning in Terraform, so extra parameters of a task
// (app_name, deploy_strategy) never fail a module that ignores them.
func (r *Runner) Plan(ctx context.Context, in StepInput) (out PlanOutput, err error) {
	s, err := r.begin(ctx, in, task.StepPlanning, true)
	ctx = s.ctx
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return out, err
	}
	if err := checkTaskEnv(s.secrets.Env); err != nil {
		return out, err
	}
	if err := s.requireInit(); err != nil {
		return out, err
	}
	tfPath, err := s.terraformPath(ctx)
	if err != nil {
		return out, err
	}
	// A detect_drift plan's drift comes with its review (reviewPlan).
	return s.savePlan(ctx, tfPath)
}

// savePlan runs `terraform plan -json -out` into the work dir's saved plan,
// with the variables in a 0600 var file removed when the plan ends. Apply
// calls it too when it must plan again (a retried apply whose saved plan may
// be stale after a partial apply).
func (s *stepRun) savePlan(ctx context.Context, tfPath string) (out PlanOutput, err error) {
	in := s.in
	opts, err := planOptions(in.Task.Params)
	if err != nil {
		return out, err
	}
	p := s.paths
	if err := os.Remove(p.planFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, transientError("removing an old plan", err)
	}
	vars := map[string]any{}
	for k, v := range in.Task.Params.Variables {
		vars[k] = v
	}
	for k, v := range s.secrets.SensitiveVariables {
		vars[k] = v
	}
	if err := writeVarFile(p.varFile, vars); err != nil {
		return out, err
	}
	defer os.Remove(p.varFile)

	if s.r.Sandbox.Active() {
		// The sandbox shows the private dir read-only, but for this file.
		if err := ensureFile(p.planFile); err != nil {
			return out, transientError("preparing the plan file", err)
		}
		s.writingPlan = true
		defer func() {
			s.writingPlan = false
			if err != nil {
				_ = os.Remove(p.planFile)
			}
		}()
	}
	tf, err := s.terraform(p.config, tfPath)
	if err != nil {
		return out, err
	}
	opts = append(opts, tfexec.Out(p.planFile), tfexec.VarFile(p.varFile), tfexec.LockTimeout(s.r.lockTimeout()))
	w := s.uiWriter()
	s.ui.resetPlan()
	start := time.Now()
	hasChanges, err := tf.PlanJSON(ctx, w, opts...)
	observeCommand(ctx, "plan", start, err)
	w.flushPartial()
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, terraformError(task.CodeTerraform, "plan", err, s.ui.diagnostics())
	}
	// Terraform creates the file 0644; it holds the plan's sensitive
	// values.
	if err := os.Chmod(p.planFile, 0o600); err != nil {
		return out, transientError("protecting the plan file", err)
	}
	planned, _ := s.ui.counts()
	out = PlanOutput{HasChanges: hasChanges, PlannedChanges: planned}
	if sum := s.ui.changeSummary(); sum != nil {
		out.Add, out.Change, out.Remove = sum.Add, sum.Change, sum.Remove
	}
	s.book.runner(task.LevelInfo, "plan saved: %d to add, %d to change, %d to destroy", out.Add, out.Change, out.Remove)
	if deferReview(in.Task.Params) && !in.PolicyPlan {
		// Nobody waits on this plan: the apply step shows it for review
		// beside its own Terraform (review.go).
		return out, s.deferReview(&out)
	}
	if err := s.reviewPlan(ctx, tf, &out); err != nil {
		// A task that may wait needs its plan kept: a reviewer reads it and
		// another host may apply it. Any other task applies at once, here.
		// So does a task whose policies read its plan.
		if in.Task.Params.EffectiveApproval() != task.ApprovalNone || in.PolicyPlan || in.PolicyApproval || ctx.Err() != nil {
			return out, err
		}
		s.book.runner(task.LevelWarn, "the plan could not be kept for review: %v", s.masker.String(firstLine(err.Error())))
	}
	return out, nil
}

// planOptions maps the task's parameters to plan flags.
func planOptions(p task.Params) ([]tfexec.PlanOption, error) {
	var opts []tfexec.PlanOption
	switch p.EffectiveAction() {
	case task.ActionApply, task.ActionPlan:
	case task.ActionDestroy:
		if p.RefreshOnly {
			return nil, configErrorf("refresh_only cannot be combined with action destroy")
		}
		opts = append(opts, tfexec.Destroy(true))
	default:
		return nil, configErrorf("action: %q is not one of apply, plan, destroy", p.Action)
	}
	for _, t := range p.Targets {
		if err := checkAddress("targets", t); err != nil {
			return nil, err
		}
		opts = append(opts, tfexec.Target(t))
	}
	for _, a := range p.Replace {
		if err := checkAddress("replace", a); err != nil {
			return nil, err
		}
		opts = append(opts, tfexec.Replace(a))
	}
	if p.RefreshOnly {
		opts = append(opts, tfexec.RefreshOnly(true))
	}
	switch {
	case p.Parallelism < 0:
		return nil, configErrorf("parallelism must be positive")
	case p.Parallelism > 0:
		opts = append(opts, tfexec.Parallelism(p.Parallelism))
	}
	return opts, nil
}

// checkAddress rejects resource addresses that cannot be one: empty, or
// shaped like a flag or several lines.
func checkAddress(field, a string) error {
	if strings.TrimSpace(a) == "" || strings.HasPrefix(a, "-") || strings.ContainsAny(a, "\n\r\x00") {
		return configErrorf("%s: %q is not a resource address", field, a)
	}
	return nil
}

// requireInit checks that Init ran for this task on this host.
func (s *stepRun) requireInit() error {
	if !s.hasDir {
		return internalErrorf("the task's work dir is missing on this host: Init must run first")
	}
	if fi, err := os.Stat(s.paths.config); err != nil || !fi.IsDir() {
		return internalErrorf("the task's configuration is missing on this host: Init must run first")
	}
	return nil
}
