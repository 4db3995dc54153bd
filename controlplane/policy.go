package controlplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Policy checks run here, on the control plane, as a local activity of the
// task workflow: never on a runner host, where task code runs. The pre_plan
// check loads the org's current policies and pins their versions; the
// post_plan check evaluates exactly those versions against the plan's JSON,
// which the runner that planned sealed with the org's key into the store.

// NameCheckPolicy evaluates the org's policies for one stage of a task
// (PolicyInput; returns PolicyOutput). Run it as a local activity.
const NameCheckPolicy = "terratask.CheckPolicy"

// PolicyInput asks for one stage's check of a task.
type PolicyInput struct {
	Stage string     `json:"stage"`
	Task  task.Input `json:"task"`
	// Now is the workflow's time of the check (input.terratask.now).
	Now time.Time `json:"now"`
	// Pinned are the versions the pre_plan check evaluated; a post_plan
	// check evaluates them.
	Pinned []task.PolicyRef `json:"pinned,omitempty"`
	// Digest is the plan's (post_plan): the plan JSON in the store must
	// be that plan's.
	Digest string `json:"digest,omitempty"`
}

// PolicyOutput is a check's outcome.
type PolicyOutput struct {
	// Check is nil when the org has no policies.
	Check *task.PolicyCheck `json:"check,omitempty"`
	// ReadsPlan reports whether a policy reads the plan (policy.Set.ReadsPlan):
	// only then does the task keep its plan's JSON and run a post_plan
	// check.
	ReadsPlan bool `json:"reads_plan,omitempty"`
}

// CheckPolicy evaluates the org's policies for one stage of a task. An
// error is a store that could not be read (the workflow retries, then fails
// closed); a policy that does not compile or evaluate is a check with
// decision task.PolicyError.
func (c *Control) CheckPolicy(ctx context.Context, in PolicyInput) (PolicyOutput, error) {
	org := in.Task.Org
	mods, err := c.policyModules(ctx, org, in.Pinned)
	if err != nil {
		return PolicyOutput{}, err
	}
	if len(mods) == 0 {
		return PolicyOutput{}, nil
	}
	failed := func(msg string) (PolicyOutput, error) {
		refs := make([]task.PolicyRef, len(mods))
		for i, m := range mods {
			refs[i] = m.Ref()
		}
		metrics.PolicyCheck(in.Stage, task.PolicyError, 0)
		return PolicyOutput{Check: &task.PolicyCheck{Decision: task.PolicyError, Stage: in.Stage,
			Results: []task.PolicyResult{}, Policies: refs, Error: msg}}, nil
	}
	set, err := c.policyCache().Get(mods)
	if err != nil {
		return failed("the org's policies do not compile: " + err.Error())
	}
	var box orgOpener
	if c.Secrets != nil {
		b, err := c.Secrets.Org(org)
		if err != nil {
			return PolicyOutput{}, err
		}
		box = b
	}
	doc := policy.NewDoc(in.Task, in.Stage, sensitiveNames(box, in.Task), in.Now)
	var input ast.Value
	switch in.Stage {
	case task.PolicyPrePlan:
		input, err = policy.PrePlanInput(doc)
	case task.PolicyPostPlan:
		var plan []byte
		plan, err = c.planJSON(ctx, box, in)
		if errors.Is(err, errNoPlanJSON) {
			return failed(err.Error())
		}
		if err != nil {
			return PolicyOutput{}, err
		}
		input, err = policy.PostPlanInput(plan, doc)
	default:
		return PolicyOutput{}, fmt.Errorf("unknown policy stage %q", in.Stage)
	}
	if err != nil {
		return failed(err.Error())
	}
	start := time.Now()
	check := set.Eval(ctx, in.Stage, input)
	metrics.PolicyCheck(in.Stage, check.Decision, time.Since(start))
	return PolicyOutput{Check: check, ReadsPlan: set.ReadsPlan()}, nil
}

// orgOpener opens what a runner of the org sealed.
type orgOpener interface {
	Open(sealed string) (task.Secrets, error)
	OpenBytes(sealed, context []byte) ([]byte, error)
}

// sensitiveNames are the names of the task's sensitive variables (their
// values stay sealed).
func sensitiveNames(box orgOpener, in task.Input) []string {
	if box == nil || in.SealedSecrets == "" {
		return nil
	}
	s, err := box.Open(in.SealedSecrets)
	if err != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.SensitiveVariables))
}

var errNoPlanJSON = errors.New("the plan's JSON for the post_plan check is not in the store (the runner did not keep it)")

// planJSON reads and opens the plan JSON the runner kept for the check.
func (c *Control) planJSON(ctx context.Context, box orgOpener, in PolicyInput) ([]byte, error) {
	p, err := c.Store.GetPlanPolicyInput(ctx, in.Task.Org, in.Task.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoPlanJSON
	}
	if err != nil {
		return nil, err
	}
	if len(p.PolicyInput) == 0 || p.Digest != in.Digest {
		return nil, errNoPlanJSON
	}
	if box == nil {
		return nil, errors.New("this control plane has no secret key to open the plan's JSON")
	}
	plain, err := box.OpenBytes(p.PolicyInput, task.PolicyInputContext(in.Task.Org, in.Task.ID, in.Digest))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open under the org's key", errNoPlanJSON)
	}
	return plain, nil
}

// policyModules are the org's current policies, or exactly the pinned
// versions.
func (c *Control) policyModules(ctx context.Context, org string, pinned []task.PolicyRef) ([]policy.Module, error) {
	cur, err := c.Store.ListPolicies(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("reading the org's policies: %w", err)
	}
	if pinned == nil {
		mods := make([]policy.Module, len(cur))
		for i, p := range cur {
			mods[i] = ModuleOf(p)
		}
		return mods, nil
	}
	byName := map[string]store.Policy{}
	for _, p := range cur {
		byName[p.Name] = p
	}
	mods := make([]policy.Module, 0, len(pinned))
	for _, ref := range pinned {
		p, ok := byName[ref.Name]
		if !ok || p.Version != ref.Version {
			if p, err = c.Store.GetPolicy(ctx, org, ref.Name, ref.Version); err != nil {
				return nil, fmt.Errorf("reading version %d of policy %s: %w", ref.Version, ref.Name, err)
			}
		}
		mods = append(mods, ModuleOf(p))
	}
	return mods, nil
}

// ModuleOf is a stored policy version as the policy package compiles it.
func ModuleOf(p store.Policy) policy.Module {
	return policy.Module{Name: p.Name, Version: p.Version, SHA256: p.SHA256, Rego: p.Rego}
}

// policyCache is the process's compiled sets.
func (c *Control) policyCache() *policy.Cache {
	if c.Policies != nil {
		return c.Policies
	}
	return defaultPolicies
}

var defaultPolicies = &policy.Cache{}

var _ orgOpener = (*secret.Box)(nil)
