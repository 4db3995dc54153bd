package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sort"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// SensitiveOutput replaces the value of a sensitive output in a task's result.
const SensitiveOutput = "(sensitive)"

// Apply runs `terraform apply -json` of the saved plan (destroying for a
// destroy task) and reads the root module's outputs. Sensitive outputs are
// the string "(sensitive)"; the others pass through the task's masker, so a
// secret can never reach the result.
func (r *Runner) Apply(ctx context.Context, in StepInput) (out ApplyOutput, err error) {
	step := task.StepApplying
	if in.Task.Params.EffectiveAction() == task.ActionDestroy {
		step = task.StepDestroying
	}
	s, err := r.begin(ctx, in, step, true)
	actx := ctx
	ctx = s.ctx
	defer func() {
		err = s.finish(ctx, err)
		if err == nil && in.CleanUp {
			// The task ends with this step: clean up as Cleanup would
			// (whose safety net, processes of the task left anywhere on
			// this host, runs here too). A failure leaves it to Cleanup.
			if !r.quiet(in.Task.ID) {
				if n := r.stopTaskProcesses(in.Task.ID, true); n > 0 {
					r.logger().Warn("stopped processes the task left running", zap.String("task", in.Task.ID), zap.Int("processes", n))
				}
			}
			out.CleanedUp = r.removeWorkDir(actx, in.Task.ID, s.paths) == nil
		}
	}()
	if err != nil {
		return out, err
	}
	if in.Task.Params.EffectiveAction() == task.ActionPlan {
		return out, internalErrorf("a plan-only task is never applied")
	}
	if err := checkTaskEnv(s.secrets.Env); err != nil {
		return out, err
	}
	p := s.paths
	if err := s.requireInit(); err != nil {
		return out, err
	}
	tfPath, err := s.terraformPath(ctx)
	if err != nil {
		return out, err
	}
	if in.SavedPlan != nil {
		// An approved plan is applied as it was reviewed, never planned
		// again: if the state moved since (a partial earlier attempt, a
		// state pushed by hand), Terraform refuses it as stale.
		if err := s.placeSavedPlan(ctx, in.SavedPlan.Digest); err != nil {
			return out, err
		}
	} else {
		// A retried apply may follow a partial one (a crash mid-apply), which
		// makes the saved plan stale: plan again against the state as it is, so
		// Terraform converges instead of failing.
		_, statErr := os.Stat(p.planFile)
		if attempt := activity.GetInfo(ctx).Attempt; attempt > 1 || statErr != nil {
			s.book.runner(task.LevelInfo, "attempt %d: planning again before %s, since an earlier attempt may have changed the state", attempt, step)
			if _, err := s.savePlan(ctx, tfPath); err != nil {
				return out, err
			}
		}
	}
	tf, err := s.terraform(p.config, tfPath)
	if err != nil {
		return out, err
	}
	opts := []tfexec.ApplyOption{tfexec.DirOrPlan(p.planFile), tfexec.LockTimeout(r.lockTimeout())}
	if n := in.Task.Params.Parallelism; n > 0 {
		opts = append(opts, tfexec.Parallelism(n))
	}
	w := s.uiWriter()
	s.ui.forgetOutputs()
	review := s.startReview(ctx, tfPath)
	start := time.Now()
	err = tf.ApplyJSON(ctx, w, opts...)
	observeCommand(ctx, "apply", start, err)
	w.flushPartial()
	s.endReview(review)
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		diags := s.ui.diagnostics()
		if in.SavedPlan != nil && staleDiagnostics(diags) {
			return out, &stepError{code: task.CodePlanStale, cause: err, diags: diags,
				msg: "the approved plan was not applied: the workspace's state changed since it was planned; create a new task to plan again"}
		}
		return out, terraformError(task.CodeTerraform, "apply", err, diags)
	}
	// The saved plan holds variable values; it is not needed any more.
	if err := os.Remove(p.planFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.book.runner(task.LevelWarn, "removing the saved plan failed: %v", err)
	}
	_, done := s.ui.counts()
	out.ChangesDone = done

	// An apply reports the outputs it leaves (sensitive ones without their
	// value) in its last message: no `terraform output` needed. A destroy
	// reports none, nor does a Terraform that predates the message.
	var metas map[string]tfexec.OutputMeta
	if step == task.StepApplying {
		metas = s.ui.appliedOutputs()
	}
	if metas == nil {
		// Output's JSON holds sensitive values: it must not reach the log.
		tf.SetStdout(io.Discard)
		start = time.Now()
		metas, err = tf.Output(ctx)
		observeCommand(ctx, "output", start, err)
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			return out, terraformError(task.CodeTerraform, "output", err, nil)
		}
	}
	out.Outputs, err = outputValues(metas, s.masker)
	if err != nil {
		return out, err
	}
	names := make([]string, 0, len(out.Outputs))
	for k := range out.Outputs {
		names = append(names, k)
	}
	sort.Strings(names)
	s.book.runner(task.LevelInfo, "%s complete: %d resource(s) changed; outputs: %v", step, done, names)
	return out, nil
}

// outputValues decodes outputs, redacting sensitive ones and masking the
// strings of the rest.
func outputValues(metas map[string]tfexec.OutputMeta, m *secret.Masker) (map[string]any, error) {
	out := make(map[string]any, len(metas))
	for name, meta := range metas {
		if meta.Sensitive {
			out[name] = SensitiveOutput
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(meta.Value))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, &stepError{code: task.CodeTerraform, msg: "terraform output: cannot decode output " + name, cause: err}
		}
		out[name] = maskValue(v, m)
	}
	return out, nil
}

func maskValue(v any, m *secret.Masker) any {
	switch x := v.(type) {
	case string:
		return m.String(x)
	case json.Number:
		// A numeric secret is masked whole.
		if m.String(x.String()) != x.String() {
			return secret.Mask
		}
		return x
	case []any:
		for i := range x {
			x[i] = maskValue(x[i], m)
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = maskValue(x[k], m)
		}
		return x
	}
	return v
}
