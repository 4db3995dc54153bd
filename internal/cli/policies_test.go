package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/task"
)

// policyServer answers /api/v1/policies as the server does: each org's
// set must compile (package policy) before a version is stored, a policy
// of --policy-dir is the directory's (409), and the dry run evaluates the
// org's set with drafts in place.
type policyServer struct {
	mu       sync.Mutex
	versions map[string][]api.Policy // by name, oldest first
	requests []string                // "METHOD /path"
	// lastEvaluate is the body of the last dry run.
	lastEvaluate api.EvaluatePolicyRequest
}

// keys of the fake: an admin key and an operator key bound to agent bot.
var policyKeys = map[string]task.KeyRef{
	"admin-key": {Name: "admin", Role: "admin"},
	"agent-key": {Name: "bot-key", Role: "operator", Agent: "bot"},
}

func newPolicyServer(t *testing.T) (*policyServer, string) {
	t.Helper()
	ps := &policyServer{versions: map[string][]api.Policy{}}
	srv := httptest.NewServer(ps)
	t.Cleanup(srv.Close)
	return ps, srv.URL
}

func (s *policyServer) fail(w http.ResponseWriter, status int, code, msg string, details map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: msg, Details: details}})
}

func (s *policyServer) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *policyServer) current(name string) *api.Policy {
	vs := s.versions[name]
	if len(vs) == 0 || vs[len(vs)-1].Deleted {
		return nil
	}
	return &vs[len(vs)-1]
}

// modules are the org's current policies with drafts in place.
func (s *policyServer) modules(drafts map[string]string) []policy.Module {
	var mods []policy.Module
	for name := range s.versions {
		if p := s.current(name); p != nil {
			if _, ok := drafts[name]; !ok {
				mods = append(mods, policy.Module{Name: name, Version: p.Version, SHA256: p.SHA256, Rego: p.Rego})
			}
		}
	}
	for name, text := range drafts {
		mods = append(mods, policy.Module{Name: name, SHA256: policy.Digest(text), Rego: text})
	}
	return mods
}

func (s *policyServer) invalid(w http.ResponseWriter, err error) {
	var ce *policy.CompileError
	if !errors.As(err, &ce) {
		s.fail(w, http.StatusBadRequest, "policy_invalid", err.Error(), nil)
		return
	}
	problems := make([]api.PolicyProblem, len(ce.Problems))
	for i, p := range ce.Problems {
		problems[i] = api.PolicyProblem(p)
	}
	s.fail(w, http.StatusBadRequest, "policy_invalid", "the policy does not compile: "+ce.Error(), map[string]any{"problems": problems})
}

func (s *policyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.Method+" "+r.URL.EscapedPath())
	key, ok := policyKeys[strings.TrimPrefix(r.Header.Get("Authorization"), "UserKey ")]
	if !ok {
		s.fail(w, http.StatusUnauthorized, "unauthorized", "a valid API key is required", nil)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v1/policies")
	if !ok {
		s.fail(w, http.StatusNotFound, "not_found", "no such route", nil)
		return
	}
	if rest == "/evaluate" && r.Method == http.MethodPost {
		s.evaluate(w, r, key)
		return
	}
	if key.Role != "admin" {
		s.fail(w, http.StatusForbidden, "forbidden", "admin keys only", nil)
		return
	}
	if rest == "" && r.Method == http.MethodGet {
		out := api.PolicyList{Policies: []api.Policy{}}
		names := make([]string, 0, len(s.versions))
		for name := range s.versions {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if p := s.current(name); p != nil {
				v := *p
				v.Rego = ""
				out.Policies = append(out.Policies, v)
			}
		}
		s.reply(w, http.StatusOK, out)
		return
	}
	seg, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	name, err := url.PathUnescape(seg)
	if err != nil || !policy.ValidName(name) {
		s.fail(w, http.StatusBadRequest, "bad_request", "bad policy name", map[string]any{"field": "name"})
		return
	}
	cur := s.current(name)
	notFound := func() { s.fail(w, http.StatusNotFound, "not_found", "Policy not found", map[string]any{"name": name}) }
	dirManaged := func() bool {
		if cur != nil && strings.HasPrefix(cur.Source, "dir:") {
			s.fail(w, http.StatusConflict, "conflict", "policy "+name+" is managed by --policy-dir", map[string]any{"name": name})
			return true
		}
		return false
	}
	switch {
	case sub == "versions" && r.Method == http.MethodGet:
		vs := s.versions[name]
		if len(vs) == 0 {
			notFound()
			return
		}
		out := api.PolicyVersions{Versions: []api.Policy{}}
		for i := len(vs) - 1; i >= 0; i-- {
			v := vs[i]
			v.Rego = ""
			out.Versions = append(out.Versions, v)
		}
		s.reply(w, http.StatusOK, out)
	case sub == "" && r.Method == http.MethodGet:
		v := cur
		if q := r.URL.Query().Get("version"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 {
				s.fail(w, http.StatusBadRequest, "bad_request", "version must be a positive integer", nil)
				return
			}
			v = nil
			if vs := s.versions[name]; n <= len(vs) && !vs[n-1].Deleted {
				v = &vs[n-1]
			}
		}
		if v == nil {
			notFound()
			return
		}
		s.reply(w, http.StatusOK, v)
	case sub == "" && r.Method == http.MethodPut:
		var req api.PutPolicyRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || strings.TrimSpace(req.Rego) == "" {
			s.fail(w, http.StatusBadRequest, "bad_request", "rego is required", map[string]any{"field": "rego"})
			return
		}
		if dirManaged() {
			return
		}
		if _, err := policy.Compile(s.modules(map[string]string{name: req.Rego})); err != nil {
			s.invalid(w, err)
			return
		}
		status := http.StatusCreated
		if cur != nil {
			status = http.StatusOK
			if cur.SHA256 == policy.Digest(req.Rego) && cur.Description == req.Description {
				s.reply(w, status, cur)
				return
			}
		}
		v := api.Policy{Name: name, Version: len(s.versions[name]) + 1, SHA256: policy.Digest(req.Rego), Description: req.Description,
			Source: "api", CreatedBy: key.Name, CreatedAt: "2025-06-01T10:00:00Z", Rego: req.Rego}
		s.versions[name] = append(s.versions[name], v)
		s.reply(w, status, v)
	case sub == "" && r.Method == http.MethodDelete:
		if dirManaged() {
			return
		}
		if cur == nil {
			notFound()
			return
		}
		s.versions[name] = append(s.versions[name], api.Policy{Name: name, Version: len(s.versions[name]) + 1, Source: cur.Source,
			CreatedBy: key.Name, CreatedAt: "2025-06-02T10:00:00Z", Deleted: true})
		w.WriteHeader(http.StatusNoContent)
	default:
		s.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed", nil)
	}
}

func (s *policyServer) evaluate(w http.ResponseWriter, r *http.Request, key task.KeyRef) {
	var req api.EvaluatePolicyRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", err.Error(), nil)
		return
	}
	s.lastEvaluate = req
	var body struct {
		Name       string      `json:"name"`
		AgentID    string      `json:"agent_id"`
		RunnerID   string      `json:"runner_id"`
		Parameters task.Params `json:"parameters"`
	}
	if err := json.Unmarshal(req.Task, &body); err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", "task: "+err.Error(), map[string]any{"field": "task"})
		return
	}
	set, err := policy.Compile(s.modules(req.Policies))
	if err != nil {
		s.invalid(w, err)
		return
	}
	in := task.Input{ID: "dry-run", Name: body.Name, Org: "default", AgentID: body.AgentID, RunnerID: body.RunnerID, Params: body.Parameters, Key: &key}
	doc := policy.NewDoc(in, req.Stage, nil, time.Now())
	var input ast.Value
	if req.Stage == task.PolicyPrePlan {
		input, err = policy.PrePlanInput(doc)
	} else {
		input, err = policy.PostPlanInput(req.Plan, doc)
	}
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", err.Error(), map[string]any{"field": "plan"})
		return
	}
	check := set.Eval(r.Context(), req.Stage, input)
	out := api.EvaluatePolicyResponse{Decision: check.Decision, Stage: check.Stage, Results: check.Results, Policies: check.Policies, Error: check.Error}
	if out.Policies == nil {
		out.Policies = []task.PolicyRef{}
	}
	s.reply(w, http.StatusOK, out)
}

// runPolicies runs `terratask policies ARGS` in process against addr with
// key, and returns its exit code (as cmd/terratask computes it) and
// output.
func runPolicies(t *testing.T, addr, key, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(stdin), Getenv: func(k string) string {
		return map[string]string{"TERRATASK_ADDRESS": addr, "TERRATASK_API_KEY": key}[k]
	}}
	cmd := PoliciesCommand(env)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(&errOut)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	var exit *ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		if exit.Err != nil {
			errOut.WriteString("terratask: " + exit.Err.Error() + "\n")
		}
		return exit.Code, out.String(), errOut.String()
	default: // cobra's own errors are usage errors
		errOut.WriteString("terratask: " + err.Error() + "\n")
		return ExitUsage, out.String(), errOut.String()
	}
}

// writeTree writes files (relative path -> text) below a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	agentsRego = `package agents

deny contains msg if {
	input.terratask.key.agent != ""
	input.terratask.task.source != ""
	msg := sprintf("agent %s may only run inline configuration", [input.terratask.key.agent])
}
`
	prodRego = `package review

require_approval contains "production needs a person" if input.terratask.task.workspace == "prod"
`
	deletesRego = `package deletes

import data.lib.deletes

deny contains sprintf("%d deletes", [count(deletes.of(input))]) if count(deletes.of(input)) > 1
`
	libRego = `package lib.deletes

of(plan) := [rc | some rc in plan.resource_changes; "delete" in rc.change.actions]
`
)

func TestPoliciesPutGetListVersionsDelete(t *testing.T) {
	srv, addr := newPolicyServer(t)
	dir := writeTree(t, map[string]string{"agents.rego": agentsRego, "agents2.rego": agentsRego + "\n# v2\n", "broken.rego": "package broken\n\ndeny contains msg if {\n\tmsg := undefined_fn(1)\n}\n"})

	code, out, errOut := runPolicies(t, addr, "admin-key", "", "put", "agents", filepath.Join(dir, "agents.rego"), "--description", "agents run inline code", "-o", "table")
	if code != 0 || out != "created agents version 1\n" {
		t.Fatalf("put: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// From stdin, JSON.
	code, out, errOut = runPolicies(t, addr, "admin-key", agentsRego+"\n# v2\n", "put", "agents", "-", "--description", "agents run inline code")
	var p api.Policy
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Version != 2 || p.Rego != agentsRego+"\n# v2\n" {
		t.Fatalf("put from stdin: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ = runPolicies(t, addr, "admin-key", "", "put", "agents", filepath.Join(dir, "agents2.rego"), "--description", "agents run inline code", "-o", "table"); code != 0 || out != "stored agents version 2\n" {
		t.Fatalf("put unchanged: exit %d, stdout %q", code, out)
	}
	// A module that does not compile: its problems at the file.
	code, out, errOut = runPolicies(t, addr, "admin-key", "", "put", "broken", filepath.Join(dir, "broken.rego"))
	if code != ExitFailed || out != "" || !strings.Contains(errOut, filepath.Join(dir, "broken.rego")+":4:9: undefined function undefined_fn") {
		t.Fatalf("put broken: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, out, _ = runPolicies(t, addr, "admin-key", "", "list", "-o", "table")
	if code != 0 || !strings.HasPrefix(out, "NAME    VERSION  SOURCE  SHA256        BY     UPDATED               DESCRIPTION\nagents  2        api     "+policy.Digest(agentsRego + "\n# v2\n")[:12]+"  admin  2025-06-01T10:00:00Z  agents run inline code\n") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	var list []api.Policy
	if code, out, _ = runPolicies(t, addr, "admin-key", "", "list"); code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Rego != "" {
		t.Fatalf("list json: exit %d\n%s", code, out)
	}

	if code, out, _ = runPolicies(t, addr, "admin-key", "", "get", "agents", "-o", "table"); code != 0 || out != agentsRego+"\n# v2\n" {
		t.Fatalf("get: exit %d\n%s", code, out)
	}
	if code, out, _ = runPolicies(t, addr, "admin-key", "", "get", "agents", "--version", "1", "-o", "table"); code != 0 || out != agentsRego {
		t.Fatalf("get --version 1: exit %d\n%s", code, out)
	}
	if code, out, _ = runPolicies(t, addr, "admin-key", "", "get", "agents", "--version", "1", "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Version != 1 || p.Rego != agentsRego {
		t.Fatalf("get json: exit %d\n%s", code, out)
	}

	if code, out, _ = runPolicies(t, addr, "admin-key", "", "delete", "agents", "-o", "table"); code != 0 || out != "deleted agents\n" {
		t.Fatalf("delete: exit %d\n%s", code, out)
	}
	code, _, errOut = runPolicies(t, addr, "admin-key", "", "get", "agents")
	if code != ExitFailed || !strings.Contains(errOut, "not_found (HTTP 404): Policy not found") {
		t.Fatalf("get deleted: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = runPolicies(t, addr, "admin-key", "", "versions", "agents", "-o", "table")
	wantVersions := "VERSION  SHA256        SOURCE  BY     CREATED               DESCRIPTION\n" +
		"3        -             api     admin  2025-06-02T10:00:00Z  (deleted)\n" +
		"2        " + policy.Digest(agentsRego + "\n# v2\n")[:12] + "  api     admin  2025-06-01T10:00:00Z  agents run inline code\n" +
		"1        " + policy.Digest(agentsRego)[:12] + "  api     admin  2025-06-01T10:00:00Z  agents run inline code\n"
	if code != 0 || out != wantVersions {
		t.Fatalf("versions: exit %d\n%s\nwant\n%s", code, out, wantVersions)
	}
	var vs []api.Policy
	if code, out, _ = runPolicies(t, addr, "admin-key", "", "versions", "agents", "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &vs) != nil || len(vs) != 3 || !vs[0].Deleted {
		t.Fatalf("versions json: exit %d\n%s", code, out)
	}

	// A policy of --policy-dir is the directory's.
	srv.versions["managed"] = []api.Policy{{Name: "managed", Version: 1, Source: "dir:/etc/policies", Rego: prodRego, SHA256: policy.Digest(prodRego)}}
	if code, _, errOut = runPolicies(t, addr, "admin-key", "", "delete", "managed"); code != ExitFailed || !strings.Contains(errOut, "conflict (HTTP 409)") {
		t.Fatalf("delete dir-managed: exit %d, stderr %q", code, errOut)
	}
	// An operator key may not manage policies.
	if code, _, errOut = runPolicies(t, addr, "agent-key", "", "list"); code != ExitFailed || !strings.Contains(errOut, "forbidden (HTTP 403)") {
		t.Fatalf("list as operator: exit %d, stderr %q", code, errOut)
	}
}

func TestPoliciesUsage(t *testing.T) {
	srv, addr := newPolicyServer(t)
	dir := writeTree(t, map[string]string{"a.rego": agentsRego, "task.json": `{"name":"n"}`, "plan.json": `{}`, "list.json": `[]`})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "missing command"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"list", "x"}, "want no arguments"},
		{[]string{"get"}, "want NAME"},
		{[]string{"get", "a", "--version", "-1"}, "--version -1"},
		{[]string{"versions"}, "want NAME"},
		{[]string{"put", "a"}, "want NAME FILE"},
		{[]string{"put", "bad name", filepath.Join(dir, "a.rego")}, `policy name "bad name"`},
		{[]string{"put", "a", filepath.Join(dir, "none.rego")}, "none.rego"},
		{[]string{"delete"}, "want NAME"},
		{[]string{"push"}, "want DIR"},
		{[]string{"test"}, "want DIR"},
		{[]string{"evaluate", "x"}, "no arguments"},
		{[]string{"evaluate", "--task", filepath.Join(dir, "task.json")}, `--stage "": want pre_plan or post_plan`},
		{[]string{"evaluate", "--stage", "apply", "--task", filepath.Join(dir, "task.json")}, `--stage "apply"`},
		{[]string{"evaluate", "--stage", "pre_plan"}, "--task FILE is required"},
		{[]string{"evaluate", "--stage", "post_plan", "--task", filepath.Join(dir, "task.json")}, "needs --plan FILE"},
		{[]string{"evaluate", "--stage", "pre_plan", "--task", filepath.Join(dir, "task.json"), "--plan", filepath.Join(dir, "plan.json")}, "--plan is for --stage post_plan"},
		{[]string{"evaluate", "--stage", "post_plan", "--task", "-", "--plan", "-"}, "cannot both read stdin"},
		{[]string{"evaluate", "--stage", "pre_plan", "--task", filepath.Join(dir, "list.json")}, "not a JSON object"},
		{[]string{"evaluate", "--stage", "pre_plan", "--task", filepath.Join(dir, "none.json")}, "--task: open"},
		{[]string{"list", "-o", "yaml"}, `--output "yaml"`},
	} {
		code, _, errOut := runPolicies(t, addr, "admin-key", "", tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if len(srv.requests) != 0 {
		t.Errorf("usage errors reached the server: %q", srv.requests)
	}
}

func TestPoliciesPush(t *testing.T) {
	srv, addr := newPolicyServer(t)
	// lib/deletes.rego defines the function deletes.rego calls: deletes
	// goes first by name and is written once lib is.
	dir := writeTree(t, map[string]string{
		"agents.rego":        agentsRego,
		"deletes.rego":       deletesRego,
		"lib/deletes.rego":   libRego,
		"deletes_test.rego":  "package deletes\n\ntest_x if true\n",
		".draft/wip.rego":    "package wip\n",
		"review/prod.rego":   prodRego,
		"README.md":          "# policies\n",
		"review/notes.txt":   "not a policy",
		"review/.x_test.rbk": "",
	})
	code, out, errOut := runPolicies(t, addr, "admin-key", "", "push", dir, "-o", "table")
	want := "POLICY       RESULT   VERSION\nagents       created  1\ndeletes      created  1\nlib.deletes  created  1\nreview.prod  created  1\n"
	if code != 0 || out != want {
		t.Fatalf("push: exit %d, stderr %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	if got := srv.current("deletes"); got == nil || got.Rego != deletesRego {
		t.Fatalf("deletes: %+v", got)
	}

	// A description set by put is kept; a changed file is a new version;
	// others are unchanged and not written.
	if code, _, errOut := runPolicies(t, addr, "admin-key", "", "put", "agents", filepath.Join(dir, "agents.rego"), "--description", "kept"); code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	srv.versions["old"] = []api.Policy{{Name: "old", Version: 1, Source: "api", Rego: "package old\n", SHA256: policy.Digest("package old\n")}}
	srv.versions["managed"] = []api.Policy{{Name: "managed", Version: 4, Source: "dir:/etc/p", Rego: "package managed\n", SHA256: policy.Digest("package managed\n")}}
	if err := os.WriteFile(filepath.Join(dir, "agents.rego"), []byte(agentsRego+"\n# changed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.requests = nil
	code, out, errOut = runPolicies(t, addr, "admin-key", "", "push", dir)
	var results []pushResult
	if code != 0 || json.Unmarshal([]byte(out), &results) != nil {
		t.Fatalf("push again: exit %d, stderr %q\n%s", code, errOut, out)
	}
	wantResults := []pushResult{
		{Name: "agents", Result: "updated", Version: 3, Path: filepath.Join(dir, "agents.rego")},
		{Name: "deletes", Result: "unchanged", Version: 1, Path: filepath.Join(dir, "deletes.rego")},
		{Name: "lib.deletes", Result: "unchanged", Version: 1, Path: filepath.Join(dir, "lib", "deletes.rego")},
		{Name: "review.prod", Result: "unchanged", Version: 1, Path: filepath.Join(dir, "review", "prod.rego")},
	}
	if !equalResults(results, wantResults) {
		t.Fatalf("results %+v\nwant %+v", results, wantResults)
	}
	if got := srv.current("agents"); got.Description != "kept" {
		t.Errorf("description %q", got.Description)
	}
	if want := []string{"GET /api/v1/policies", "PUT /api/v1/policies/agents"}; strings.Join(srv.requests, ",") != strings.Join(want, ",") {
		t.Errorf("requests %q, want %q", srv.requests, want)
	}

	// --prune deletes the API's policies DIR does not hold, not the
	// directory-managed ones.
	code, out, errOut = runPolicies(t, addr, "admin-key", "", "push", dir, "--prune", "-o", "table")
	if code != 0 || out != "POLICY       RESULT     VERSION\nagents       unchanged  3\ndeletes      unchanged  1\nlib.deletes  unchanged  1\nreview.prod  unchanged  1\nold          deleted    -\n" {
		t.Fatalf("prune: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if srv.current("old") != nil || srv.current("managed") == nil {
		t.Errorf("old %+v, managed %+v", srv.current("old"), srv.current("managed"))
	}
}

func equalResults(a, b []pushResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPoliciesPushFailures(t *testing.T) {
	srv, addr := newPolicyServer(t)
	srv.versions["managed"] = []api.Policy{{Name: "managed", Version: 1, Source: "dir:/etc/p", Rego: "package managed\n", SHA256: policy.Digest("package managed\n")}}

	// A file that does not parse: nothing is written.
	dir := writeTree(t, map[string]string{"agents.rego": agentsRego, "z/broken.rego": "package broken\n\ndeny contains msg if {\n"})
	code, out, errOut := runPolicies(t, addr, "admin-key", "", "push", dir)
	if code != ExitFailed || out != "" || !strings.Contains(errOut, filepath.Join(dir, "z", "broken.rego")+":") || len(srv.requests) != 0 {
		t.Fatalf("parse error: exit %d, stdout %q, stderr %q, requests %q", code, out, errOut, srv.requests)
	}
	// One that does not compile with the others, and one of --policy-dir:
	// reported, the others pushed.
	dir = writeTree(t, map[string]string{"agents.rego": agentsRego, "calls.rego": "package calls\n\ndeny contains x if {\n\tx := data.nowhere.f(1)\n}\n", "managed.rego": "package managed\n\n# mine\n"})
	code, out, errOut = runPolicies(t, addr, "admin-key", "", "push", dir, "-o", "table")
	if code != ExitFailed || !strings.Contains(out, "agents   created  1\n") || !strings.Contains(out, "calls    failed   -\n") || !strings.Contains(out, "managed  failed   -\n") {
		t.Fatalf("push failures: exit %d, stderr %q\n%s", code, errOut, out)
	}
	for _, w := range []string{
		"calls: the policies do not compile:\n  " + filepath.Join(dir, "calls.rego") + ":4:7: undefined function data.nowhere.f",
		"managed: conflict (HTTP 409): policy managed is managed by --policy-dir",
		"terratask: 2 of 3 policies not pushed",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, errOut)
		}
	}
	// A directory without policies pushes nothing (and prunes nothing).
	if code, _, errOut = runPolicies(t, addr, "admin-key", "", "push", t.TempDir(), "--prune"); code != ExitFailed || !strings.Contains(errOut, "no policies in") {
		t.Fatalf("empty dir: exit %d, stderr %q", code, errOut)
	}
	if srv.current("agents") == nil {
		t.Error("an empty push pruned")
	}
}

func TestPoliciesTest(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"agents.rego": agentsRego,
		"agents_test.rego": `package agents

test_agent_source_denied if {
	deny == {"agent bot may only run inline configuration"} with input as {"terratask": {"key": {"agent": "bot"}, "task": {"source": "git::x"}}}
}

test_person_allowed if {
	count(deny) == 0 with input as {"terratask": {"key": {"agent": ""}, "task": {"source": "git::x"}}}
}
`,
	})
	// No server and no key.
	code, out, errOut := runPolicies(t, "http://127.0.0.1:1", "", "", "test", dir, "-v")
	if code != 0 || out != "PASS data.agents.test_agent_source_denied\nPASS data.agents.test_person_allowed\n2 passed, 0 failed (2 tests)\n" {
		t.Fatalf("test: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if code, out, _ = runPolicies(t, "", "", "", "test", dir); code != 0 || out != "2 passed, 0 failed (2 tests)\n" {
		t.Fatalf("quiet: exit %d\n%s", code, out)
	}
	// A failing test: exit 1, the failure printed.
	if err := os.WriteFile(filepath.Join(dir, "more_test.rego"), []byte("package agents\n\ntest_wrong if {\n\tcount(deny) == 1 with input as {}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runPolicies(t, "", "", "", "test", dir)
	if code != ExitFailed || !strings.Contains(out, "FAIL data.agents.test_wrong ("+filepath.Join(dir, "more_test.rego")+":3)\n") || !strings.HasSuffix(out, "2 passed, 1 failed (3 tests)\n") {
		t.Fatalf("failing: exit %d\n%s", code, out)
	}
	// A blocked builtin does not compile.
	if err := os.WriteFile(filepath.Join(dir, "more_test.rego"), []byte("package agents\n\ntest_send if {\n\thttp.send({\"method\": \"get\", \"url\": \"http://x\"})\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runPolicies(t, "", "", "", "test", dir)
	if code != ExitFailed || !strings.Contains(errOut, filepath.Join(dir, "more_test.rego")+":4:2: undefined function http.send") {
		t.Fatalf("blocked: exit %d, stderr %q", code, errOut)
	}
}

func TestPoliciesEvaluate(t *testing.T) {
	srv, addr := newPolicyServer(t)
	dir := writeTree(t, map[string]string{
		"task.json":       `{"name":"net","agent_id":"bot","runner_id":"local","parameters":{"source":"git::https://example.com/net.git","workspace":"prod"}}`,
		"inline.json":     `{"name":"net","agent_id":"bot","runner_id":"local","parameters":{"files":{"main.tf":"resource \"terraform_data\" \"x\" {}"}}}`,
		"plan.json":       `{"format_version":"1.2","resource_changes":[{"address":"a.b","change":{"actions":["delete"]}},{"address":"a.c","change":{"actions":["delete","create"]}}]}`,
		"drafts/lib.rego": libRego,
		"drafts/del.rego": deletesRego,
		"bad/x.rego":      "package x\n\ndeny contains y if {\n\ty := nope(1)\n}\n",
	})
	for _, p := range [][2]string{{"agents", agentsRego}, {"review", prodRego}} {
		if code, _, errOut := runPolicies(t, addr, "admin-key", "", "put", p[0], writeTree(t, map[string]string{"p.rego": p[1]})+"/p.rego"); code != 0 {
			t.Fatalf("put %s: %s", p[0], errOut)
		}
	}

	// pre_plan, an agent's key: deny (exit 0 all the same).
	code, out, errOut := runPolicies(t, addr, "agent-key", "", "evaluate", "--stage", "pre_plan", "--task", filepath.Join(dir, "task.json"), "-o", "table")
	want := "Decision:  deny\nStage:     pre_plan\nPolicies:  agents v1, review v1\n\n" +
		"POLICY  VERSION  RULE              MESSAGE\n" +
		"agents  v1       deny              agent bot may only run inline configuration\n" +
		"review  v1       require_approval  production needs a person\n"
	if code != 0 || out != want {
		t.Fatalf("evaluate: exit %d, stderr %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	// The task from stdin, JSON out.
	code, out, _ = runPolicies(t, addr, "agent-key", `{"name":"n","agent_id":"bot","runner_id":"local","parameters":{"files":{"main.tf":""}}}`, "evaluate", "--stage", "pre_plan", "--task", "-")
	var res api.EvaluatePolicyResponse
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Decision != task.PolicyAllow || len(res.Results) != 0 || len(res.Policies) != 2 {
		t.Fatalf("evaluate json: exit %d\n%s", code, out)
	}

	// post_plan with drafts from a directory, one of which calls the other.
	code, out, errOut = runPolicies(t, addr, "agent-key", "", "evaluate", "--stage", "post_plan", "--task", filepath.Join(dir, "inline.json"),
		"--plan", filepath.Join(dir, "plan.json"), "--with", filepath.Join(dir, "drafts"), "-o", "table")
	want = "Decision:  deny\nStage:     post_plan\nPolicies:  agents v1, del draft, lib draft, review v1\n\n" +
		"POLICY  VERSION  RULE  MESSAGE\n" +
		"del     draft    deny  2 deletes\n"
	if code != 0 || out != want {
		t.Fatalf("evaluate --with: exit %d, stderr %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	sent := srv.lastEvaluate
	if sent.Stage != task.PolicyPostPlan || len(sent.Policies) != 2 || sent.Policies["del"] != deletesRego || sent.Policies["lib"] != libRego ||
		!strings.Contains(string(sent.Plan), `"a.c"`) || !strings.Contains(string(sent.Task), `"main.tf"`) {
		t.Fatalf("sent %+v", sent)
	}

	// Drafts that do not compile: the request fails, each problem at its
	// file.
	code, out, errOut = runPolicies(t, addr, "agent-key", "", "evaluate", "--stage", "pre_plan", "--task", filepath.Join(dir, "task.json"), "--with", filepath.Join(dir, "bad"))
	if code != ExitFailed || out != "" || !strings.Contains(errOut, filepath.Join(dir, "bad", "x.rego")+":4:7: undefined function nope") {
		t.Fatalf("bad drafts: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
