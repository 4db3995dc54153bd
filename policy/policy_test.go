package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/terratask/terratask/task"
)

func mod(name, text string) Module {
	return Module{Name: name, Version: 1, SHA256: Digest(text), Rego: text}
}

func preInput(t *testing.T, in task.Input) ast.Value {
	t.Helper()
	v, err := PrePlanInput(NewDoc(in, task.PolicyPrePlan, nil, time.Unix(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecisions(t *testing.T) {
	set, err := Compile([]Module{
		mod("agents", `package agents
deny contains msg if {
	input.terratask.key.agent != ""
	input.terratask.task.source != ""
	msg := sprintf("agent %s may only run catalog modules", [input.terratask.key.agent])
}`),
		mod("review", `package review
require_approval contains "production needs a person" if input.terratask.task.workspace == "prod"`),
		mod("hints", `package hints
warn contains {"msg": "name your task"} if input.terratask.task.name == ""`),
		mod("legacy", `package legacy
warn if input.terratask.task.runner_id == "legacy"`),
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		in       task.Input
		decision string
		results  []string // rule:message
	}{
		{"allow", task.Input{Name: "x", RunnerID: "local"}, task.PolicyAllow, nil},
		{"warn only", task.Input{RunnerID: "legacy"}, task.PolicyAllow, []string{"warn:name your task", "warn:warn of policy legacy"}},
		{"require approval", task.Input{Name: "x", Params: task.Params{Workspace: "prod"}}, task.PolicyRequireApproval, []string{"require_approval:production needs a person"}},
		{"deny wins", task.Input{Name: "x", Key: &task.KeyRef{Name: "k", Role: "operator", Agent: "bot"}, Params: task.Params{Source: "git::x", Workspace: "prod"}},
			task.PolicyDeny, []string{"deny:agent bot may only run catalog modules", "require_approval:production needs a person"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := set.Eval(context.Background(), task.PolicyPrePlan, preInput(t, c.in))
			if got.Decision != c.decision {
				t.Fatalf("decision %q, want %q (%+v)", got.Decision, c.decision, got)
			}
			var rs []string
			for _, r := range got.Results {
				rs = append(rs, r.Rule+":"+r.Message)
				if r.Version != 1 || r.Policy == "" {
					t.Errorf("result %+v names no policy version", r)
				}
			}
			if strings.Join(rs, "|") != strings.Join(c.results, "|") {
				t.Fatalf("results %q, want %q", rs, c.results)
			}
			if len(got.Policies) != 4 || got.Policies[0].Name != "agents" {
				t.Fatalf("policies %+v", got.Policies)
			}
		})
	}
}

func TestCompileErrorsNameLineAndColumn(t *testing.T) {
	_, err := Compile([]Module{mod("ok", "package ok\n"), mod("broken", "package broken\n\ndeny contains msg if {\n\tmsg := input.x +\n}\n")})
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a CompileError", err)
	}
	p := ce.Problems[0]
	if p.Policy != "broken" || p.Line < 3 || p.Column < 1 {
		t.Fatalf("problem %+v does not point into broken.rego", p)
	}
	// Rego v0 syntax is refused: v1 needs `if` and `contains`.
	if _, err := Compile([]Module{mod("v0", "package v0\ndeny[msg] { msg := \"x\" }\n")}); !errors.As(err, &ce) {
		t.Fatalf("a Rego v0 module compiled: %v", err)
	}
}

func TestBlockedBuiltinsDoNotCompile(t *testing.T) {
	for _, b := range Blocked() {
		args := `{}`
		switch b {
		case "net.lookup_ip_addr":
			args = `"localhost"`
		case "numbers.range":
			args = `1, 2`
		case "numbers.range_step":
			args = `1, 2, 1`
		case "net.cidr_expand":
			args = `"10.0.0.0/8"`
		case "opa.runtime":
			args = ``
		}
		text := "package x\nwarn contains sprintf(\"%v\", [v]) if { v := " + b + "(" + args + ") }\n"
		_, err := Compile([]Module{mod("x", text)})
		var ce *CompileError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "undefined function") {
			t.Errorf("%s: compiled or failed otherwise: %v", b, err)
		}
	}
}

func TestRuntimeErrorFailsClosed(t *testing.T) {
	set, err := Compile([]Module{mod("conflict", `package conflict
level := "a" if input.terratask.task.name != ""
level := "b" if input.terratask.task.name != ""
deny contains "never" if level == "c"`)})
	if err != nil {
		t.Fatal(err)
	}
	got := set.Eval(context.Background(), task.PolicyPrePlan, preInput(t, task.Input{Name: "n"}))
	if got.Decision != task.PolicyError || !strings.Contains(got.Error, "conflict") {
		t.Fatalf("check %+v, want a policy error", got)
	}
}

func TestTimeoutFailsClosed(t *testing.T) {
	set, err := Compile([]Module{mod("slow", `package slow
deny contains "slow" if {
	n := count([1 | some a in input.terratask.task.variables; some b in input.terratask.task.variables; some c in input.terratask.task.variables])
	n < 0
}`)})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{}
	for i := range 2000 {
		vars[strings.Repeat("v", 1+i%7)+string(rune('a'+i%26))+strings.Repeat("x", i/182)] = i
	}
	in := task.Input{Params: task.Params{Variables: vars}}
	got := set.Eval(context.Background(), task.PolicyPrePlan, preInput(t, in))
	if got.Decision != task.PolicyError || !strings.Contains(got.Error, "did not finish") {
		t.Fatalf("check %+v, want a timeout", got)
	}
}

func TestReadsPlan(t *testing.T) {
	cases := map[string]bool{
		`package a
deny contains "x" if input.terratask.key.agent == "bot"`: false,
		`package a
deny contains "x" if input.terratask.stage == "post_plan"`: true,
		`package a
deny contains "x" if { some rc in input.resource_changes; rc.type == "null_resource" }`: true,
		`package a
deny contains "x" if { d := input; d.planned_values }`: true,
		`package a
import input.terratask.task as t
deny contains "x" if t.name == "n"`: false,
	}
	for text, want := range cases {
		set, err := Compile([]Module{mod("a", text)})
		if err != nil {
			t.Fatal(err)
		}
		if set.ReadsPlan() != want {
			t.Errorf("ReadsPlan of\n%s\n= %v, want %v", text, !want, want)
		}
	}
}

func TestConftestStylePolicyOnAPlan(t *testing.T) {
	// Written the way conftest's and Atlantis's examples are, against
	// `terraform show -json`: nothing terratask-specific.
	set, err := Compile([]Module{mod("tags", `package main

deny contains msg if {
	some rc in input.resource_changes
	rc.mode == "managed"
	"create" in rc.change.actions
	not rc.change.after.tags.owner
	msg := sprintf("%s has no owner tag", [rc.address])
}`)})
	if err != nil {
		t.Fatal(err)
	}
	plan := `{"format_version":"1.2","resource_changes":[
		{"address":"aws_s3_bucket.a","mode":"managed","type":"aws_s3_bucket","change":{"actions":["create"],"after":{"tags":{"owner":"me"}}}},
		{"address":"aws_s3_bucket.b","mode":"managed","type":"aws_s3_bucket","change":{"actions":["create"],"after":{"tags":{}}}}]}`
	in, err := PostPlanInput([]byte(plan), NewDoc(task.Input{}, task.PolicyPostPlan, nil, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	got := set.Eval(context.Background(), task.PolicyPostPlan, in)
	if got.Decision != task.PolicyDeny || len(got.Results) != 1 || got.Results[0].Message != "aws_s3_bucket.b has no owner tag" {
		t.Fatalf("check %+v", got)
	}
}

func TestCacheCompilesOncePerVersionSet(t *testing.T) {
	var c Cache
	a := []Module{mod("a", "package a\nwarn contains \"a\"\n")}
	s1, err := c.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := c.Get(a)
	if s1 != s2 {
		t.Fatal("the same versions compiled twice")
	}
	b := []Module{{Name: "a", Version: 2, SHA256: Digest("package a\n"), Rego: "package a\n"}}
	s3, _ := c.Get(b)
	if s3 == s1 {
		t.Fatal("a new version reused the old set")
	}
}
