package deployments

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/task"
)

// ---- policies/: the example policy set compiles, is tested, and decides ----

// policiesDir is the example policy set.
const policiesDir = "policies"

// examplePolicies loads the set as push and --policy-dir do.
func examplePolicies(t *testing.T) []policy.DirModule {
	t.Helper()
	mods, err := policy.LoadDir(policiesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) < 4 {
		t.Fatalf("only %d policies in %s", len(mods), policiesDir)
	}
	return mods
}

// TestPolicyExamplesPassTheirTests runs the set's Rego tests as `terratask
// policies test` does (the server's compiler: Rego v1, blocked builtins
// unavailable): every test passes, and each policy has a test file.
func TestPolicyExamplesPassTheirTests(t *testing.T) {
	mods := examplePolicies(t)
	var out strings.Builder
	passed, failed, err := policy.Test(context.Background(), policiesDir, true, &out)
	if err != nil {
		t.Fatalf("policy.Test: %v\n%s", err, out.String())
	}
	if failed > 0 || passed < len(mods) {
		t.Fatalf("%d passed, %d failed, for %d policies:\n%s", passed, failed, len(mods), out.String())
	}
	readme, err := os.ReadFile(filepath.Join(policiesDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		test := strings.TrimSuffix(m.Path, ".rego") + "_test.rego"
		if b, err := os.ReadFile(test); err != nil || !strings.Contains(string(b), "\ntest_") {
			t.Errorf("policy %s has no tests in %s: %v", m.Name, test, err)
		}
		if !strings.HasPrefix(m.Rego, "# "+m.Name+":") {
			t.Errorf("%s does not start with a header comment \"# %s: ...\"", m.Path, m.Name)
		}
		if !strings.Contains(string(readme), "`"+m.Name+"`") {
			t.Errorf("%s/README.md does not describe policy %s", policiesDir, m.Name)
		}
	}
}

// TestPolicyExamplesCompile compiles every policy alone and the set
// together, as the server does before it stores them.
func TestPolicyExamplesCompile(t *testing.T) {
	mods := examplePolicies(t)
	var all []policy.Module
	for i, m := range mods {
		pm := policy.Module{Name: m.Name, Version: i + 1, SHA256: policy.Digest(m.Rego), Rego: m.Rego}
		if _, err := policy.Compile([]policy.Module{pm}); err != nil {
			t.Errorf("%s: %v", m.Path, err)
		}
		all = append(all, pm)
	}
	set, err := policy.Compile(all)
	if err != nil {
		t.Fatalf("the set: %v", err)
	}
	if !set.ReadsPlan() {
		t.Error("the set does not read the plan")
	}
}

// TestPolicyExamplesDecide evaluates the set as the control plane does, at
// both stages, for an agent's task and a person's.
func TestPolicyExamplesDecide(t *testing.T) {
	var mods []policy.Module
	for _, m := range examplePolicies(t) {
		mods = append(mods, policy.Module{Name: m.Name, Version: 1, SHA256: policy.Digest(m.Rego), Rego: m.Rego})
	}
	set, err := policy.Compile(mods)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	agentKey := &task.KeyRef{Name: "ops-bot", Role: "operator", Agent: "claude-ops"}
	personKey := &task.KeyRef{Name: "alice", Role: "operator"}
	inline := func(key *task.KeyRef, files map[string]string) task.Input {
		return task.Input{ID: "task-1", Org: "default", Name: "net", AgentID: "agent-1", RunnerID: "local", Key: key,
			Params: task.Params{Files: files}}
	}
	results := func(c *task.PolicyCheck) []string {
		var out []string
		for _, r := range c.Results {
			out = append(out, r.Policy+" "+r.Rule)
		}
		return out
	}

	// pre_plan: inline files.
	pre := func(in task.Input) *task.PolicyCheck {
		v, err := policy.PrePlanInput(policy.NewDoc(in, task.PolicyPrePlan, nil, now))
		if err != nil {
			t.Fatal(err)
		}
		return set.Eval(ctx, task.PolicyPrePlan, v)
	}
	clean := map[string]string{"main.tf": "resource \"aws_s3_bucket\" \"logs\" {\n  bucket = \"acme-logs\"\n}\n"}
	if c := pre(inline(agentKey, clean)); c.Decision != task.PolicyAllow || len(c.Results) != 0 {
		t.Errorf("pre_plan, clean files: %+v", c)
	}
	exec := map[string]string{"main.tf": clean["main.tf"], "hook.tf": "resource \"terraform_data\" \"hook\" {\n  provisioner \"local-exec\" {\n    command = \"id\"\n  }\n}\n"}
	if c := pre(inline(personKey, exec)); c.Decision != task.PolicyDeny || !slices.Equal(results(c), []string{"no_local_exec deny"}) || !strings.HasPrefix(c.Results[0].Message, "hook.tf: ") {
		t.Errorf("pre_plan, local-exec: %+v", c)
	}

	// post_plan: a plan that replaces a database, deletes three buckets and
	// creates one without its tags.
	plan := []byte(`{
  "format_version": "1.2",
  "terraform_version": "1.9.8",
  "resource_changes": [
    {"address": "aws_db_instance.main", "mode": "managed", "type": "aws_db_instance", "name": "main",
     "change": {"actions": ["delete", "create"], "before": {"tags": {"owner": "data", "cost_center": "cc-7"}},
                "after": {"engine_version": "16.2", "tags": {"owner": "data", "cost_center": "cc-7"}}, "after_unknown": {"id": true}}},
    {"address": "aws_s3_bucket.a", "mode": "managed", "type": "aws_s3_bucket", "name": "a", "change": {"actions": ["delete"], "before": {"tags": {}}, "after": null}},
    {"address": "aws_s3_bucket.b", "mode": "managed", "type": "aws_s3_bucket", "name": "b", "change": {"actions": ["delete"], "before": {"tags": {}}, "after": null}},
    {"address": "aws_s3_bucket.c", "mode": "managed", "type": "aws_s3_bucket", "name": "c", "change": {"actions": ["delete"], "before": {"tags": {}}, "after": null}},
    {"address": "aws_s3_bucket.logs", "mode": "managed", "type": "aws_s3_bucket", "name": "logs",
     "change": {"actions": ["create"], "before": null, "after": {"bucket": "acme-logs", "tags": {"owner": "sre"}}, "after_unknown": {"arn": true}}}
  ],
  "configuration": {"root_module": {"resources": [{"address": "aws_s3_bucket.logs", "mode": "managed", "type": "aws_s3_bucket", "name": "logs"}]}}
}`)
	post := func(in task.Input) *task.PolicyCheck {
		v, err := policy.PostPlanInput(plan, policy.NewDoc(in, task.PolicyPostPlan, nil, now))
		if err != nil {
			t.Fatal(err)
		}
		return set.Eval(ctx, task.PolicyPostPlan, v)
	}
	c := post(inline(agentKey, clean))
	want := []string{"agent_destroy_limit deny", "agent_replace_approval require_approval", "required_tags deny"}
	if c.Decision != task.PolicyDeny || !slices.Equal(results(c), want) {
		t.Errorf("post_plan, an agent: %s %q, want deny %q\n%+v", c.Decision, results(c), want, c)
	}
	if msgs := c.Messages(task.RuleDeny); len(msgs) == 0 || !strings.Contains(msgs[0], "deletes 4 resources, more than the 3") {
		t.Errorf("post_plan, an agent: deny %q", msgs)
	}
	// A person's key: only the tags.
	c = post(inline(personKey, clean))
	if c.Decision != task.PolicyDeny || !slices.Equal(results(c), []string{"required_tags deny"}) ||
		c.Results[0].Message != `aws_s3_bucket.logs: missing required tag "cost_center"` {
		t.Errorf("post_plan, a person: %+v", c)
	}
}
