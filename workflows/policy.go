package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/task"
)

// Policy checks (issue 21). In the policy version, a task's org's policies
// are evaluated on the control plane (the controlplane.NameCheckPolicy
// local activity) twice: pre_plan before the task waits for its workspace
// or claims a runner, so a denied task never starts an engine process; and
// post_plan after its plan, against the plan's JSON, when a policy reads
// the plan. A deny fails the task with policy_denied; a check that cannot be
// evaluated fails it with policy_error (fail closed); a require_approval
// makes the plan wait for a person whatever the task's approval mode; a
// warning is recorded. An org without policies adds one local activity
// (its marker) and nothing else.

// versionPolicy guards the policy checks. Histories recorded before it
// replay without them.
const versionPolicy = "policy"

// policyRun is the workflow's side of the policy checks.
type policyRun struct {
	on bool
	// pinned are the versions the pre_plan check evaluated (nil: the org
	// has no policies).
	pinned []task.PolicyRef
	// readsPlan: a post_plan check runs, and the runner keeps the plan's
	// JSON for it.
	readsPlan bool
	// approval: a check asked for a person's approval.
	approval bool
}

// checkPolicy runs one stage's check and acts on its decision: an error
// ends the task.
func (r *run) checkPolicy(ctx workflow.Context, stage, digest string) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Second,
		},
	})
	in := controlplane.PolicyInput{Stage: stage, Task: r.in, Now: workflow.Now(ctx).UTC(), Pinned: r.policy.pinned, Digest: digest}
	var out controlplane.PolicyOutput
	if err := workflow.ExecuteLocalActivity(lctx, controlplane.NameCheckPolicy, in).Get(ctx, &out); err != nil {
		if ctx.Err() != nil {
			return err
		}
		out.Check = &task.PolicyCheck{Decision: task.PolicyError, Stage: stage, Results: []task.PolicyResult{},
			Policies: r.policy.pinned, Error: "the org's policies could not be loaded: " + err.Error()}
	}
	c := out.Check
	if c == nil {
		return nil
	}
	if stage == task.PolicyPrePlan {
		r.policy.pinned = c.Policies
		if r.policy.pinned == nil {
			r.policy.pinned = []task.PolicyRef{}
		}
		r.policy.readsPlan = out.ReadsPlan
	}
	level := task.LevelInfo
	switch c.Decision {
	case task.PolicyDeny, task.PolicyError:
		level = task.LevelError
	case task.PolicyRequireApproval:
		level = task.LevelWarn
	default:
		if len(c.Messages(task.RuleWarn)) > 0 {
			level = task.LevelWarn
		}
	}
	r.transition(ctx, func(s *task.State) { s.Policy = c }, logLine(level, policyLine(c)))
	switch c.Decision {
	case task.PolicyDeny:
		msg := "denied by policy: " + strings.Join(c.Messages(task.RuleDeny), "; ")
		return temporal.NewNonRetryableApplicationError(msg, task.CodePolicyDenied, nil, task.Error{
			Code: task.CodePolicyDenied, Message: msg, Details: policyDetails(c)})
	case task.PolicyError:
		msg := "the policies could not be evaluated, so the task fails closed: " + c.Error
		return temporal.NewNonRetryableApplicationError(msg, task.CodePolicyError, nil, task.Error{
			Code: task.CodePolicyError, Message: msg, Details: policyDetails(c)})
	case task.PolicyRequireApproval:
		r.policy.approval = true
	}
	return nil
}

// policyDetails are a failed check's error details: its stage and results.
func policyDetails(c *task.PolicyCheck) map[string]any {
	results := make([]any, len(c.Results))
	for i, res := range c.Results {
		results[i] = map[string]any{"policy": res.Policy, "version": res.Version, "rule": res.Rule, "message": res.Message}
	}
	d := map[string]any{"stage": c.Stage, "decision": c.Decision, "results": results}
	if c.Error != "" {
		d["error"] = c.Error
	}
	return d
}

// policyLine is the log line of a check: its decision, then every result.
func policyLine(c *task.PolicyCheck) string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy check %s: %s (%d policies)", c.Stage, c.Decision, len(c.Policies))
	if c.Error != "" {
		b.WriteString(": " + c.Error)
	}
	for _, res := range c.Results {
		fmt.Fprintf(&b, "; %s %s (v%d): %s", res.Rule, res.Policy, res.Version, res.Message)
	}
	return b.String()
}

// postPlanPolicy runs the post_plan check of a plan, when the pre_plan
// check found policies that read plans.
func (r *run) postPlanPolicy(ctx workflow.Context, digest string) error {
	if !r.policy.on || !r.policy.readsPlan || digest == "" {
		return nil
	}
	return r.checkPolicy(ctx, task.PolicyPostPlan, digest)
}
