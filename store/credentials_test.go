package store

import (
	"strings"
	"testing"
)

func TestMatchGlobs(t *testing.T) {
	for _, c := range []struct {
		globs []string
		name  string
		want  bool
	}{
		{nil, "anything", true},
		{[]string{}, "", true},
		{[]string{"prod-*"}, "prod-eu", true},
		{[]string{"prod-*"}, "staging", false},
		{[]string{"staging", "prod-?"}, "prod-1", true},
		{[]string{"prod-?"}, "prod-12", false},
		{[]string{"[a-c]*"}, "bot", true},
		{[]string{"*"}, "", true},
		{[]string{"["}, "[", false}, // malformed: matches nothing
		{[]string{"agent-x"}, "agent-xy", false},
	} {
		if got := MatchGlobs(c.globs, c.name); got != c.want {
			t.Errorf("MatchGlobs(%q, %q) = %v, want %v", c.globs, c.name, got, c.want)
		}
	}
}

func TestRefusalAndAttach(t *testing.T) {
	s := CredentialSet{Agents: []string{"deploy-*"}, Workspaces: []string{"prod-*"}, Runners: []string{"eu-*"}}
	for _, c := range []struct{ agent, ws, runner, want string }{
		{"deploy-1", "prod-a", "eu-1", ""},
		{"other", "prod-a", "eu-1", ScopeAgents},
		{"deploy-1", "dev", "eu-1", ScopeWorkspaces},
		{"deploy-1", "prod-a", "us-1", ScopeRunners},
	} {
		if got := s.Refusal(c.agent, c.ws, c.runner); got != c.want {
			t.Errorf("Refusal(%s, %s, %s) = %q, want %q", c.agent, c.ws, c.runner, got, c.want)
		}
	}
	if s.Attaches("deploy-1", "prod-a", "eu-1") {
		t.Error("a set that is not attached attaches")
	}
	s.Attach = true
	if !s.Attaches("deploy-1", "prod-a", "eu-1") || s.Attaches("other", "prod-a", "eu-1") {
		t.Error("an attached set attaches to the tasks it serves only")
	}
	if (CredentialSet{Attach: true}).Attaches("a", "w", "r") {
		t.Error("an attached set without workspaces attaches")
	}
	e := &CredentialRefusedError{Set: "aws", Scope: ScopeWorkspaces, Value: "dev"}
	if !strings.Contains(e.Error(), "credential set aws") || !strings.Contains(e.Error(), `workspace "dev"`) {
		t.Errorf("refusal %q", e)
	}
	if e := (&CredentialRefusedError{Set: "gone"}); !strings.Contains(e.Error(), "gone does not exist") {
		t.Errorf("refusal %q", e)
	}
}

func TestClash(t *testing.T) {
	task := CredentialSource{Env: []string{"AWS_REGION"}, Variables: []string{"region"}}
	for _, c := range []struct {
		what        string
		sources     []CredentialSource
		name, a, b  string
		wantClashed bool
	}{
		{"none", []CredentialSource{task, {Name: "aws", Env: []string{"AWS_SECRET_ACCESS_KEY"}, Variables: []string{"db_password"}}}, "", "", "", false},
		{"env of the task and a set", []CredentialSource{task, {Name: "aws", Env: []string{"AWS_REGION"}}}, "AWS_REGION", "", "aws", true},
		{"variable of the task and a set", []CredentialSource{task, {Name: "db", Variables: []string{"region"}}}, "region", "", "db", true},
		{"a set's TF_VAR_ and a task's variable", []CredentialSource{task, {Name: "db", Env: []string{"TF_VAR_region"}}}, "region", "", "db", true},
		{"two sets", []CredentialSource{task, {Name: "a", Env: []string{"X"}}, {Name: "b", Env: []string{"X"}}}, "X", "a", "b", true},
		{"one set's TF_VAR_x and its own x", []CredentialSource{{Name: "a", Env: []string{"TF_VAR_x"}, Variables: []string{"x"}}}, "", "", "", false},
		{"TF_VAR_ alone is no variable", []CredentialSource{{Name: "a", Env: []string{"TF_VAR_"}}, {Name: "b", Variables: []string{""}}}, "", "", "", false},
	} {
		name, a, b, ok := Clash(c.sources)
		if ok != c.wantClashed || name != c.name || a != c.a || b != c.b {
			t.Errorf("%s: Clash = %q %q %q %v, want %q %q %q %v", c.what, name, a, b, ok, c.name, c.a, c.b, c.wantClashed)
		}
	}
}

func TestApplyCredentialPut(t *testing.T) {
	cur := CredentialSet{Org: "o", Name: "n", SealedEnv: "e1", EnvNames: []string{"B", "A"}, SealedVariables: "v1",
		VariableNames: []string{"x"}, CreatedBy: "first"}
	next := CredentialSet{Org: "o", Name: "n", SealedEnv: "e2", EnvNames: []string{"C"}, CreatedBy: "second", UpdatedBy: "second"}
	got := ApplyCredentialPut(cur, true, next, CredentialKeep{Variables: true})
	if got.SealedEnv != "e2" || got.SealedVariables != "v1" || got.CreatedBy != "first" || got.UpdatedBy != "second" ||
		strings.Join(got.VariableNames, ",") != "x" || got.Agents == nil {
		t.Fatalf("put %+v", got)
	}
	got = ApplyCredentialPut(CredentialSet{}, false, next, CredentialKeep{Env: true, Variables: true})
	if got.SealedEnv != "" || len(got.EnvNames) != 0 || got.CreatedBy != "second" {
		t.Fatalf("new set %+v", got)
	}
	if got = ApplyCredentialPut(cur, true, cur, CredentialKeep{}); strings.Join(got.EnvNames, ",") != "A,B" {
		t.Fatalf("names unsorted: %v", got.EnvNames)
	}
}
