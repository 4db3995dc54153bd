package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/task"
)

// Policy as code (issue 21): what an org's policies cost.
//
//   - Row 6.1, in this process: the post_plan check's work on the control
//     plane, policy.PostPlanInput and Set.Eval of the 20-module set
//     (PolicySet) against Terraform's JSON of a 50-resource plan, set
//     compiled once through policy.Cache; baseline: PostPlanInput alone,
//     alternating.
//   - Row 6.2, on a dev of its own: the one-resource task in an org holding
//     the 20 policies against the same task in an org holding none,
//     alternating.

// Targets of issue 21.
const (
	TargetPolicyEvalP99MS = 5.0  // row 6.1, PostPlanInput + Eval at p99
	TargetPolicyTaskRatio = 1.05 // row 6.2, with policies against without at p50
)

// Orgs of row 6.2's dev (its keys file); the dev's own org is unused.
const (
	policyOrgWith    = "bench-policies"
	policyOrgWithout = "bench-none"
	policyAgent      = "bench-agent"
)

// PolicyEvalResult is row 6.1.
type PolicyEvalResult struct {
	Modules       int `json:"modules"`
	PlanResources int `json:"plan_resources"`
	PlanBytes     int `json:"plan_bytes"`
	// CompileMS is the set's first policy.Cache.Get: parse, compile and
	// prepare the query; CachedMS a second Get of the same versions.
	CompileMS float64 `json:"compile_ms"`
	CachedMS  float64 `json:"cached_get_ms"`
	// Check is policy.NewDoc, PostPlanInput and Set.Eval; Eval the last
	// alone, from the same iterations; Parse (the baseline) NewDoc and
	// PostPlanInput alone, alternating with Check.
	Check Dist `json:"check"`
	Eval  Dist `json:"eval"`
	Parse Dist `json:"parse"`
	// Decision and Messages are the check's ("rule policy: message").
	Decision string   `json:"decision"`
	Messages []string `json:"messages,omitempty"`
	// Modules' own costs: each compiled alone and evaluated on the same
	// input, p50, slowest first.
	PerModule []ModuleCost `json:"per_module"`
}

// ModuleCost is one module's Eval on row 6.1's input, alone.
type ModuleCost struct {
	Name  string  `json:"name"`
	P50MS float64 `json:"p50_ms"`
}

// PolicyTaskResult is row 6.2.
type PolicyTaskResult struct {
	Policies int `json:"policies"`
	// Task is the org with the policies, Base the org without.
	Task    Dist    `json:"task"`
	Base    Dist    `json:"base"`
	Ratio   float64 `json:"ratio_p50"`
	AddedMS float64 `json:"added_p50_ms"`
	// CPU per task of dev itself and of its terraform children.
	DevCPUMS           float64 `json:"dev_cpu_per_task_ms"`
	BaseDevCPUMS       float64 `json:"base_dev_cpu_per_task_ms"`
	TerraformCPUMS     float64 `json:"terraform_cpu_per_task_ms"`
	BaseTerraformCPUMS float64 `json:"base_terraform_cpu_per_task_ms"`
	// Phases are the workflow's phases (PhasesOf), p50 with and without.
	Phases []PolicyPhase `json:"phases"`
	// Checks are the policy check log lines of the last task with
	// policies.
	Checks []string `json:"checks"`
}

// PolicyPhase is one phase of a task with and without the policies, ms.
type PolicyPhase struct {
	Name      string  `json:"name"`
	WithMS    float64 `json:"with_policies_ms"`
	WithoutMS float64 `json:"without_ms"`
}

// policyPhase runs both rows.
func (r *runner) policyPhase(ctx context.Context) error {
	mods, err := PolicySet(r.cfg.Root)
	if err != nil {
		return err
	}
	var errs []error
	if err := r.policyEval(ctx, mods); err != nil {
		errs = append(errs, fmt.Errorf("evaluation (row 6.1): %w", err))
	}
	if err := r.policyTask(ctx, mods); err != nil {
		errs = append(errs, fmt.Errorf("task (row 6.2): %w", err))
	}
	return errors.Join(errs...)
}

// showPlanJSON plans f in a fresh directory with the real terraform and
// returns `terraform show -json` of the saved plan, as a runner keeps it
// for the post_plan check.
func (r *runner) showPlanJSON(ctx context.Context, f Fixture) ([]byte, error) {
	dir, err := r.bare.Prepare(f)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	tf := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "terraform", args...)
		cmd.Dir, cmd.Env = dir, env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("terraform %s: %v\n%s", args[0], err, tail(stderr.String()+string(out), 2000))
		}
		return out, nil
	}
	if _, err := tf("init", "-input=false"); err != nil {
		return nil, err
	}
	if _, err := tf("plan", "-input=false", "-out=plan.tfplan"); err != nil {
		return nil, err
	}
	return tf("show", "-json", "plan.tfplan")
}

// policyInput is the task row 6.1 evaluates for: one of f, created by an
// agent's key, as the API records it.
func policyInput(f Fixture) task.Input {
	return task.Input{ID: "bench-" + randHex(8), Name: "bench " + f.Name, AgentID: policyAgent, RunnerID: "local",
		Org: policyOrgWith, CreatedAt: time.Now().UTC(), CreatedBy: "bench-agent-key",
		Params: task.Params{Files: f.Files},
		Key:    &task.KeyRef{Name: "bench-agent-key", Role: string(auth.RoleOperator), Agent: policyAgent}}
}

// policyEval measures row 6.1.
func (r *runner) policyEval(ctx context.Context, mods []policy.Module) error {
	const resources = 50
	f := ResourcesFixture(resources)
	plan, err := r.showPlanJSON(ctx, f)
	if err != nil {
		return err
	}
	var doc struct {
		ResourceChanges []json.RawMessage `json:"resource_changes"`
	}
	if err := json.Unmarshal(plan, &doc); err != nil {
		return fmt.Errorf("terraform show -json: %w", err)
	}
	res := &PolicyEvalResult{Modules: len(mods), PlanResources: len(doc.ResourceChanges), PlanBytes: len(plan)}
	if res.PlanResources != resources {
		return fmt.Errorf("the plan has %d resource changes, not %d", res.PlanResources, resources)
	}
	var cache policy.Cache
	t := time.Now()
	set, err := cache.Get(mods)
	res.CompileMS = ms(time.Since(t))
	if err != nil {
		return fmt.Errorf("compiling the set: %w", err)
	}
	t = time.Now()
	again, err := cache.Get(mods)
	res.CachedMS = ms(time.Since(t))
	if err != nil || again != set {
		return errors.New("policy.Cache compiled the same versions twice")
	}
	if !set.ReadsPlan() {
		return errors.New("the set does not read the plan: no post_plan check would run")
	}
	in := policyInput(f)
	parseOnly := func() (time.Duration, error) {
		t := time.Now()
		_, err := policy.PostPlanInput(plan, policy.NewDoc(in, task.PolicyPostPlan, nil, time.Now()))
		return time.Since(t), err
	}
	var last *task.PolicyCheck
	check := func() (time.Duration, time.Duration, error) {
		t := time.Now()
		input, err := policy.PostPlanInput(plan, policy.NewDoc(in, task.PolicyPostPlan, nil, time.Now()))
		if err != nil {
			return 0, 0, err
		}
		e := time.Now()
		last = set.Eval(ctx, task.PolicyPostPlan, input)
		done := time.Now()
		if last.Decision != task.PolicyAllow {
			return 0, 0, fmt.Errorf("the set decided %s on the benchmark plan (%s): %+v", last.Decision, last.Error, last.Results)
		}
		return done.Sub(t), done.Sub(e), nil
	}
	const warmups = 20
	var parses, checks, evals []time.Duration
	runtime.GC()
	for i := range warmups + r.cfg.PolicyEvals {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Alternate which goes first, so the garbage one leaves behind
		// falls on both.
		var p, c, e time.Duration
		var err error
		if i%2 == 0 {
			if p, err = parseOnly(); err == nil {
				c, e, err = check()
			}
		} else if c, e, err = check(); err == nil {
			p, err = parseOnly()
		}
		if err != nil {
			return err
		}
		if i >= warmups {
			parses, checks, evals = append(parses, p), append(checks, c), append(evals, e)
		}
	}
	res.Parse, res.Check, res.Eval = Summarise(parses), Summarise(checks), Summarise(evals)
	res.Decision = last.Decision
	for _, m := range last.Results {
		res.Messages = append(res.Messages, fmt.Sprintf("%s %s: %s", m.Rule, m.Policy, m.Message))
	}
	if res.PerModule, err = perModule(ctx, mods, plan, in, max(r.cfg.PolicyEvals/10, 10)); err != nil {
		return err
	}
	r.res.PolicyEval = res
	r.logf("  policy evaluation: %d modules compiled in %.0f ms; %d-resource plan (%d KB): check p50 %.2f ms p99 %.2f ms, parse only p50 %.2f ms p99 %.2f ms; %s, %d message(s)",
		res.Modules, res.CompileMS, res.PlanResources, res.PlanBytes/1024, res.Check.P50, res.Check.P99, res.Parse.P50, res.Parse.P99, res.Decision, len(res.Messages))
	return nil
}

// perModule evaluates each module alone, n times after 3 warm-ups.
func perModule(ctx context.Context, mods []policy.Module, plan []byte, in task.Input, n int) ([]ModuleCost, error) {
	input, err := policy.PostPlanInput(plan, policy.NewDoc(in, task.PolicyPostPlan, nil, time.Now()))
	if err != nil {
		return nil, err
	}
	var out []ModuleCost
	for _, m := range mods {
		set, err := policy.Compile([]policy.Module{m})
		if err != nil {
			return nil, err
		}
		var ds []time.Duration
		for i := range 3 + n {
			t := time.Now()
			set.Eval(ctx, task.PolicyPostPlan, input)
			if i >= 3 {
				ds = append(ds, time.Since(t))
			}
		}
		out = append(out, ModuleCost{Name: m.Name, P50MS: Summarise(ds).P50})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].P50MS > out[j].P50MS })
	return out, nil
}

// policyKey is a key of row 6.2's keys file.
type policyKey struct {
	name, raw, org string
	role           auth.Role
	agent          string
}

// writePolicyKeys writes a keys file (JSON) of keys.
func writePolicyKeys(path string, keys []policyKey) error {
	var f auth.File
	for _, k := range keys {
		f.Keys = append(f.Keys, auth.Key{Name: k.name, Org: k.org, Role: k.role, Agent: k.agent, Hash: auth.HashKey(k.raw)})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// putPolicies stores mods as the policies of the org of c's (admin) key.
func putPolicies(ctx context.Context, c *Client, mods []policy.Module) error {
	for _, m := range mods {
		body, _ := json.Marshal(map[string]string{"rego": m.Rego, "description": "terratask-bench: the policy rows' set"})
		code, _, raw, err := c.Do(ctx, http.MethodPut, "/api/v1/policies/"+url.PathEscape(m.Name), body)
		if err != nil {
			return err
		}
		if code != http.StatusCreated && code != http.StatusOK {
			return fmt.Errorf("PUT /api/v1/policies/%s: %d %s", m.Name, code, tail(string(raw), 1000))
		}
	}
	return nil
}

// policyChecks are a task's policy check log lines.
func policyChecks(logs []LogEntry) []string {
	var out []string
	for _, l := range logs {
		if strings.HasPrefix(l.Message, "policy check ") {
			out = append(out, l.Message)
		}
	}
	return out
}

// policyTask measures row 6.2 on a dev of its own: runner IDs on demand
// (each org's tasks name runner local, which is per org), a keys file with
// an admin and an agent's operator key in each of two orgs; the 20
// policies go into one of them through the API. The same one-resource
// task runs in both orgs, alternating (which org goes first alternates
// too), after three warm-up pairs (each org's runner starts on the first
// task that names it; the first check compiles the set).
func (r *runner) policyTask(ctx context.Context, mods []policy.Module) error {
	dataDir := filepath.Join(r.work, "dev-policy")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	keys := []policyKey{
		{"bench-admin-with", "bench-" + randHex(16), policyOrgWith, auth.RoleAdmin, ""},
		{"bench-agent-with", "bench-" + randHex(16), policyOrgWith, auth.RoleOperator, policyAgent},
		{"bench-agent-without", "bench-" + randHex(16), policyOrgWithout, auth.RoleOperator, policyAgent},
	}
	keysPath := filepath.Join(r.work, "policy-keys.json")
	if err := writePolicyKeys(keysPath, keys); err != nil {
		return err
	}
	dev, err := StartDev(DevOptions{Bin: r.bin, DataDir: dataDir, Key: r.key, Env: r.devEnv, OnDemand: true,
		Args: []string{"--api-keys-file", keysPath}})
	if err != nil {
		return err
	}
	defer dev.Stop()
	saved := r.dev
	r.dev = dev // for the noise gauge
	defer func() { r.dev = saved }()
	r.logf("  policy dev: API %s, pid %d", dev.API, dev.PID())

	if err := putPolicies(ctx, NewClient(dev.API, keys[0].raw, 1), mods); err != nil {
		return err
	}
	with, without := NewClient(dev.API, keys[1].raw, 2), NewClient(dev.API, keys[2].raw, 2)
	f := ResourcesFixture(1)
	pid := dev.PID()
	type kind struct {
		c         *Client
		times     []time.Duration
		cpu       CPUTimes
		phases    map[string][]float64
		checks    []string
		wantCheck bool
	}
	kinds := []*kind{{c: with, phases: map[string][]float64{}, wantCheck: true}, {c: without, phases: map[string][]float64{}}}
	one := func(k *kind, measured bool) error {
		c0, err := ProcCPU(pid)
		if err != nil {
			return err
		}
		d, id, err := r.taskVia(ctx, k.c, f, policyAgent, r.cfg.Poll)
		if err != nil {
			return err
		}
		c1, err := ProcCPU(pid)
		if err != nil {
			return err
		}
		logs, err := k.c.Logs(ctx, id)
		if err != nil {
			return err
		}
		checks := policyChecks(logs)
		post := false
		for _, c := range checks {
			post = post || strings.HasPrefix(c, "policy check "+task.PolicyPostPlan+":")
		}
		switch {
		case k.wantCheck && !post:
			return fmt.Errorf("task %s of org %s ran no post_plan policy check (its checks: %q)", id, policyOrgWith, checks)
		case !k.wantCheck && len(checks) > 0:
			return fmt.Errorf("task %s of org %s ran policy checks: %q", id, policyOrgWithout, checks)
		}
		if !measured {
			return nil
		}
		k.times = append(k.times, d)
		delta := c1.Sub(c0)
		k.cpu.Self += delta.Self
		k.cpu.Children += delta.Children
		for name, v := range PhasesOf(logs) {
			k.phases[name] = append(k.phases[name], ms(v))
		}
		k.checks = checks
		return nil
	}
	runs := r.cfg.PolicyRuns
	for i := range 3 + runs {
		measured := i >= 3
		a, b := kinds[0], kinds[1]
		if i%2 == 1 {
			a, b = b, a
		}
		if err := one(a, measured); err != nil {
			return err
		}
		if err := one(b, measured); err != nil {
			return err
		}
		if measured {
			r.logf("  policy task run %d/%d: with %d policies %s, without %s", i-2, runs, len(mods),
				kinds[0].times[len(kinds[0].times)-1].Round(time.Millisecond), kinds[1].times[len(kinds[1].times)-1].Round(time.Millisecond))
		}
	}
	w, wo := kinds[0], kinds[1]
	res := &PolicyTaskResult{Policies: len(mods), Task: Summarise(w.times), Base: Summarise(wo.times), Checks: w.checks,
		DevCPUMS: ms(w.cpu.Self) / float64(runs), BaseDevCPUMS: ms(wo.cpu.Self) / float64(runs),
		TerraformCPUMS: ms(w.cpu.Children) / float64(runs), BaseTerraformCPUMS: ms(wo.cpu.Children) / float64(runs)}
	res.AddedMS = res.Task.P50 - res.Base.P50
	res.Ratio = ratio(res.Task.P50, res.Base.P50)
	for _, name := range phasesIn(w.phases, wo.phases) {
		res.Phases = append(res.Phases, PolicyPhase{Name: name, WithMS: Median(w.phases[name]), WithoutMS: Median(wo.phases[name])})
	}
	r.res.PolicyTask = res
	r.logf("  policy task: with %d policies p50 %.0f ms, without %.0f ms: %.2fx (%+.0f ms)", len(mods), res.Task.P50, res.Base.P50, res.Ratio, res.AddedMS)
	if dev.Exited() {
		return fmt.Errorf("the policy dev exited:\n%s", tail(dev.Output(), 2000))
	}
	return nil
}

// phasesIn lists the phases of both maps in a task's order (phaseOrder).
func phasesIn(ms ...map[string][]float64) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		for _, m := range ms {
			if _, ok := m[name]; ok && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	for _, name := range phaseOrder {
		add(name)
	}
	for _, m := range ms {
		for _, name := range sortedKeys(m) {
			add(name)
		}
	}
	return out
}

// policyDetails renders what explains rows 6.1 and 6.2.
func policyDetails(res *Results) string {
	var b strings.Builder
	if e := res.PolicyEval; e != nil {
		fmt.Fprintf(&b, "Policies (item 6): the set of %d modules (deployments/policies and 16 generated, bench/policymodules.go) compiled in %s (policy.Cache's first Get; a second Get of the same versions %s); the %d-resource plan's JSON is %s KB; per check (p50 / p99 of %d): PostPlanInput and Eval %s, Eval alone %s, PostPlanInput alone %s; decision %s",
			e.Modules, dur(e.CompileMS), dur(e.CachedMS), e.PlanResources, thousands(e.PlanBytes/1024), e.Check.N, pp(e.Check), pp(e.Eval), pp(e.Parse), e.Decision)
		if len(e.Messages) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(e.Messages, "; "))
		}
		if len(e.PerModule) > 0 {
			sum := 0.0
			var top []string
			for i, m := range e.PerModule {
				sum += m.P50MS
				if i < 6 {
					top = append(top, fmt.Sprintf("%s %s", m.Name, dur(m.P50MS)))
				}
			}
			fmt.Fprintf(&b, ". Each module alone, Eval p50 (sum %s): %s, ...", dur(sum), strings.Join(top, ", "))
		}
		b.WriteString(".\n")
	}
	if t := res.PolicyTask; t != nil {
		fmt.Fprintf(&b, "Task with %d policies against none (item 6, p50 %s against %s): dev's own CPU per task %s against %s, its terraform %s against %s. Workflow phases, p50 with / without: ",
			t.Policies, dur(t.Task.P50), dur(t.Base.P50), dur(t.DevCPUMS), dur(t.BaseDevCPUMS), dur(t.TerraformCPUMS), dur(t.BaseTerraformCPUMS))
		var ps []string
		for _, p := range t.Phases {
			ps = append(ps, fmt.Sprintf("%s %s / %s", p.Name, dur(p.WithMS), dur(p.WithoutMS)))
		}
		b.WriteString(strings.Join(ps, "; ") + ".")
		if len(t.Checks) > 0 {
			fmt.Fprintf(&b, " Its checks: %s.", strings.Join(t.Checks, " | "))
		}
		b.WriteString("\n")
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
