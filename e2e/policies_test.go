package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/terratask/terratask/policy"
)

// Keys of the policy tests' own `terratask dev`: org default's roles, an
// agent-bound operator, an admin of an org without policies, and the admin
// of org gitops, whose policies come from --policy-dir.
var polKeys = []principal{
	{"pol-admin", "raw-pol-admin-3a7e", "default", "admin", ""},
	{"pol-op-one", "raw-pol-op-one-6c2d", "default", "operator", ""},
	{"pol-op-two", "raw-pol-op-two-1f8b", "default", "operator", ""},
	{"pol-viewer", "raw-pol-viewer-9e4a", "default", "viewer", ""},
	{"pol-bot", "raw-pol-bot-5d0c", "default", "operator", "agent-pol"},
	{"pol-other", "raw-pol-other-7b3f", "other", "admin", ""},
	{"pol-gitops", "raw-pol-gitops-2e9d", "gitops", "admin", ""},
}

func polKey(name string) string {
	for _, p := range polKeys {
		if p.name == name {
			return p.raw
		}
	}
	panic(name)
}

// polDirV1 and polDirV2 are the --policy-dir policy of org gitops before
// and after its edit.
const (
	polDirV1 = "package gitops.guard\n\ndeny contains \"v1: a gitops task needs metadata.owner\" if not input.terratask.task.metadata.owner\n"
	polDirV2 = "package gitops.guard\n\ndeny contains \"v2: a gitops task needs metadata.owner\" if not input.terratask.task.metadata.owner\n"
)

// TestPolicies runs the policy-as-code scenarios (issue 21) against one
// `terratask dev` with real terraform and OPA. Policies are org-wide:
// every task of org default is evaluated against every subtest's policies,
// so each policy decides only for its own subtest's task (by the task's
// name or workspace), and each subtest uses a package of its own.
func TestPolicies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysPath, polKeys)
	policyDir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, "guard.rego"), []byte(polDirV1), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, err := startDev(filepath.Join(dir, "data"), "raw-pol-dev-admin-4b1a", "--api-keys-file", keysPath,
		"--policy-dir", "gitops="+policyDir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	t.Run("group", func(t *testing.T) {
		t.Run("PrePlanDenyStartsNoEngine", func(t *testing.T) { t.Parallel(); testPolicyPrePlanDeny(t, dev) })
		t.Run("PostPlanDenyConftestStyle", func(t *testing.T) { t.Parallel(); testPolicyPostPlanDeny(t, dev) })
		t.Run("RequireApprovalOverridesNone", func(t *testing.T) { t.Parallel(); testPolicyRequireApproval(t, dev) })
		t.Run("WarnIsRecorded", func(t *testing.T) { t.Parallel(); testPolicyWarn(t, dev) })
		t.Run("Versions", func(t *testing.T) { t.Parallel(); testPolicyVersions(t, dev) })
		t.Run("FailClosed", func(t *testing.T) { t.Parallel(); testPolicyFailClosed(t, dev) })
		t.Run("ScheduledRunDenied", func(t *testing.T) { t.Parallel(); testPolicySchedule(t, dev) })
		t.Run("MCPShowsTheDenial", func(t *testing.T) { t.Parallel(); testPolicyMCP(t, dev) })
		t.Run("AuthzAndDryRun", func(t *testing.T) { t.Parallel(); testPolicyAuthz(t, dev) })
		t.Run("DryRunSeesWhatTheTaskSees", func(t *testing.T) { t.Parallel(); testPolicyDryRunMatches(t, dev) })
		t.Run("NoSecretInTheInput", func(t *testing.T) { t.Parallel(); testPolicySecrets(t, dev) })
		t.Run("PolicyDirReloadsOnSIGHUP", func(t *testing.T) { t.Parallel(); testPolicyDir(t, dev, policyDir) })
	})
}

// polCheck is a task's policy check as the API shows it.
type polCheck struct {
	Decision string      `json:"decision"`
	Stage    string      `json:"stage"`
	Results  []polResult `json:"results"`
	Policies []polRef    `json:"policies"`
	Error    string      `json:"error"`
}

type polResult struct {
	Policy  string `json:"policy"`
	Version int    `json:"version"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

type polRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
}

// polView is a stored policy version as the API shows it.
type polView struct {
	Name        string `json:"name"`
	Version     int    `json:"version"`
	SHA256      string `json:"sha256"`
	Description string `json:"description"`
	Source      string `json:"source"`
	CreatedBy   string `json:"created_by"`
	CreatedAt   string `json:"created_at"`
	Deleted     bool   `json:"deleted"`
	Rego        string `json:"rego"`
}

// polTask is the Task Object's fields the policy tests read.
type polTask struct {
	Status    string    `json:"status"`
	StartedAt *string   `json:"started_at"`
	Policy    *polCheck `json:"policy"`
	Result    *struct {
		Output map[string]any `json:"output"`
		Error  *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details struct {
				Stage    string      `json:"stage"`
				Decision string      `json:"decision"`
				Results  []polResult `json:"results"`
				Error    string      `json:"error"`
			} `json:"details"`
		} `json:"error"`
	} `json:"result"`
}

// polStatus is the status route's fields the policy tests read.
type polStatus struct {
	Status   string `json:"status"`
	Metadata struct {
		StepsCompleted int       `json:"steps_completed"`
		WaitingFor     string    `json:"waiting_for"`
		Policy         *polCheck `json:"policy"`
	} `json:"metadata"`
}

func decodeInto(t testing.TB, r reply, what string, out any) {
	t.Helper()
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("%s: decoding %d %s: %v", what, r.code, r.body, err)
	}
}

// putPolicy writes a policy with key.
func putPolicy(t testing.TB, dev *devProc, key, name, rego string) reply {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"rego": rego, "description": "e2e " + name})
	return dev.call(t, http.MethodPut, "/api/v1/policies/"+name, key, b)
}

// mustPutPolicy writes a policy as pol-admin and checks the answer's
// status and version.
func mustPutPolicy(t testing.TB, dev *devProc, name, rego string, code, version int) polView {
	t.Helper()
	r := putPolicy(t, dev, polKey("pol-admin"), name, rego)
	var v polView
	decodeInto(t, r, "PUT "+name, &v)
	if r.code != code || v.Name != name || v.Version != version || v.Rego != rego || v.SHA256 != policy.Digest(rego) ||
		v.Source != "api" || v.CreatedBy != "pol-admin" || v.Description != "e2e "+name || v.Deleted {
		t.Fatalf("PUT %s: %d %s (want %d, version %d)", name, r.code, r.body, code, version)
	}
	rfc3339(t, "created_at", v.CreatedAt)
	return v
}

func polTaskOf(t testing.TB, dev *devProc, id string) polTask {
	t.Helper()
	r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+id, dev.key, nil)
	if r.code != http.StatusOK {
		t.Fatalf("get %s: %d %s", id, r.code, r.body)
	}
	var tk polTask
	decodeInto(t, r, "task", &tk)
	return tk
}

func polStatusOf(t testing.TB, dev *devProc, id string) polStatus {
	t.Helper()
	r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+id+"/status", dev.key, nil)
	if r.code != http.StatusOK {
		t.Fatalf("status of %s: %d %s", id, r.code, r.body)
	}
	var st polStatus
	decodeInto(t, r, "status", &st)
	return st
}

// sameResults compares results exactly, in order.
func sameResults(got, want []polResult) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// hasRef reports whether refs name the version of a policy with the text
// rego.
func hasRef(refs []polRef, name string, version int, rego string) bool {
	for _, r := range refs {
		if r.Name == name {
			return r.Version == version && r.SHA256 == policy.Digest(rego)
		}
	}
	return false
}

// checkDenied checks a task failed with code (policy_denied or
// policy_error) at stage, with exactly the results want, on the Task
// Object, its error and the status route.
func checkDenied(t testing.TB, dev *devProc, id, code, stage, decision string, want []polResult) polTask {
	t.Helper()
	if s := waitEnd(t, dev, id); s[len(s)-1].Status != "failed" {
		t.Fatalf("task %s ended %+v\n%s", id, s[len(s)-1], logText(t, dev, id))
	}
	tk := polTaskOf(t, dev, id)
	if tk.Status != "failed" || tk.Result == nil || tk.Result.Error == nil {
		t.Fatalf("task %s: %+v", id, tk)
	}
	e := tk.Result.Error
	if e.Code != code || e.Details.Stage != stage || e.Details.Decision != decision || !sameResults(e.Details.Results, want) {
		t.Fatalf("task %s's error: %+v, want code %s, stage %s, decision %s, results %+v", id, e, code, stage, decision, want)
	}
	if code == "policy_denied" {
		msgs := make([]string, len(want))
		for i, r := range want {
			msgs[i] = r.Message
		}
		if m := "denied by policy: " + strings.Join(msgs, "; "); e.Message != m {
			t.Fatalf("task %s's message %q, want %q", id, e.Message, m)
		}
	}
	if p := tk.Policy; p == nil || p.Decision != decision || p.Stage != stage || !sameResults(p.Results, want) {
		t.Fatalf("task %s's policy %+v", id, tk.Policy)
	}
	if st := polStatusOf(t, dev, id); st.Metadata.Policy == nil || st.Metadata.Policy.Decision != decision ||
		st.Metadata.Policy.Stage != stage || !sameResults(st.Metadata.Policy.Results, want) {
		t.Fatalf("status metadata of %s: %+v", id, st.Metadata.Policy)
	}
	return tk
}

// polWorkDir is a task's work dir on dev's runner local.
func polWorkDir(dev *devProc, id string) string {
	return filepath.Join(dev.dataDir, "runners", "local", "work", id)
}

// stepStarted matches the workflow's log line of a step.
var stepStarted = regexp.MustCompile(`(?m)^step \w+ started$`)

// noState checks the workspace has no state (204).
func noState(t testing.TB, dev *devProc, ws string) {
	t.Helper()
	if r := dev.call(t, http.MethodGet, "/api/v1/state/default/"+ws, polKey("pol-admin"), nil); r.code != http.StatusNoContent {
		t.Fatalf("state of %s: %d %s", ws, r.code, r.body)
	}
}

// polTinyFiles runs no resource.
var polTinyFiles = map[string]string{"main.tf": `output "ok" { value = "ok" }`}

// polParked is a task no runner serves: it passes the pre_plan check, then
// waits for its runner.
func polParked(name, agent, workspace string) map[string]any {
	params := map[string]any{"files": polTinyFiles}
	if workspace != "" {
		params["workspace"] = workspace
	}
	return map[string]any{"name": name, "agent_id": agent, "runner_id": "nobody-serves-this", "parameters": params}
}

// waitParked waits until a parked task waits for its runner (after its
// pre_plan check), then cancels it.
func waitParked(t testing.TB, dev *devProc, key, id string) polStatus {
	t.Helper()
	dev.waitStatus(t, id, time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("parked task %s ended %+v\n%s", id, s, logText(t, dev, id))
		}
		return s.Metadata.WaitingFor == "runner nobody-serves-this"
	})
	st := polStatusOf(t, dev, id)
	if r := dev.call(t, http.MethodPut, "/api/v1/tasks/"+id+"/cancel", key, nil); r.code != http.StatusOK {
		t.Fatalf("cancel %s: %d %s", id, r.code, r.body)
	}
	return st
}

// 1. A pre_plan deny: the task fails before its workspace queue and the
// runner's claim; no Terraform runs, nothing is written.
func testPolicyPrePlanDeny(t *testing.T, dev *devProc) {
	const rego = `package terratask.localexec

deny contains msg if {
	input.terratask.task.workspace == "pol-pre"
	input.terratask.key.name == "pol-op-one"
	input.terratask.key.role == "operator"
	some name, text in input.terratask.task.files
	contains(text, "local-exec")
	msg := sprintf("inline file %s runs local-exec: provisioners may not run commands on the runner", [name])
}
`
	mustPutPolicy(t, dev, "pol-pre-local-exec", rego, http.StatusCreated, 1)
	marker := filepath.Join(t.TempDir(), "local-exec-ran")
	files := map[string]string{"main.tf": fmt.Sprintf(`resource "terraform_data" "x" {
  provisioner "local-exec" {
    command = "touch %s"
  }
}
`, marker)}
	tk := createAs(t, dev, polKey("pol-op-one"), map[string]any{"name": "pol-pre", "agent_id": "agent-pol-pre", "runner_id": "local",
		"parameters": map[string]any{"files": files, "workspace": "pol-pre"}})
	want := []polResult{{"pol-pre-local-exec", 1, "deny", "inline file main.tf runs local-exec: provisioners may not run commands on the runner"}}
	got := checkDenied(t, dev, tk.ID, "policy_denied", "pre_plan", "deny", want)
	if !hasRef(got.Policy.Policies, "pol-pre-local-exec", 1, rego) || got.StartedAt != nil {
		t.Fatalf("task %+v (policies %+v)", got, got.Policy.Policies)
	}
	st := polStatusOf(t, dev, tk.ID)
	if st.Metadata.StepsCompleted != 0 || st.Status != "failed" {
		t.Fatalf("status %+v", st)
	}
	logs := logText(t, dev, tk.ID)
	if strings.Contains(logs, "picked up by") || stepStarted.MatchString(logs) || strings.Contains(logs, "waiting for workspace") ||
		!strings.Contains(logs, "policy check pre_plan: deny (") ||
		!strings.Contains(logs, "; deny pol-pre-local-exec (v1): inline file main.tf runs local-exec") {
		t.Fatalf("logs of the denied task:\n%s", logs)
	}
	var errLine bool
	for _, l := range dev.logs(t, tk.ID, "?level=error") {
		errLine = errLine || strings.HasPrefix(l.Message, "policy check pre_plan: deny (")
	}
	if !errLine {
		t.Fatalf("no error-level log line of the check:\n%s", logs)
	}
	// (testPolicyRequireApproval sees a waiting task's work dir there.)
	if _, err := os.Stat(polWorkDir(dev, tk.ID)); !os.IsNotExist(err) {
		t.Fatalf("the denied task has a work dir: %v", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the denied task's local-exec ran: %v", err)
	}
	noState(t, dev, "pol-pre")
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", polKey("pol-admin"), nil); r.code != http.StatusNotFound {
		t.Fatalf("plan of a task denied before planning: %d %s", r.code, r.body)
	}
}

// 2. A post_plan deny written as a conftest user writes it: the plan is
// made and kept for review, nothing is applied.
func testPolicyPostPlanDeny(t *testing.T, dev *devProc) {
	const rego = `package main

import rego.v1

deny contains msg if {
	some rc in input.resource_changes
	rc.type == "terraform_data"
	rc.name == "db"
	"create" in rc.change.actions
	input.terratask.task.workspace == "pol-post"
	msg := sprintf("%s: creating a database is not allowed here", [rc.address])
}
`
	mustPutPolicy(t, dev, "pol-post-conftest", rego, http.StatusCreated, 1)
	tk := createAs(t, dev, polKey("pol-op-one"), reviewBody(t, "pol-post", "pol-post", 1, nil))
	want := []polResult{{"pol-post-conftest", 1, "deny", "terraform_data.db: creating a database is not allowed here"}}
	got := checkDenied(t, dev, tk.ID, "policy_denied", "post_plan", "deny", want)
	if !hasRef(got.Policy.Policies, "pol-post-conftest", 1, rego) {
		t.Fatalf("policies evaluated %+v", got.Policy.Policies)
	}
	logs := logText(t, dev, tk.ID)
	if !strings.Contains(logs, "step planning started") || strings.Contains(logs, "step applying started") ||
		!strings.Contains(logs, "policy check pre_plan: allow (") ||
		!strings.Contains(logs, "; deny pol-post-conftest (v1): terraform_data.db: creating a database is not allowed here") {
		t.Fatalf("logs:\n%s", logs)
	}
	noState(t, dev, "pol-post")
	// The plan, with what the policy said.
	r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", polKey("pol-viewer"), nil)
	var plan struct {
		TaskID          string           `json:"task_id"`
		ResourceChanges []map[string]any `json:"resource_changes"`
		Policy          *polCheck        `json:"policy"`
	}
	decodeInto(t, r, "plan", &plan)
	if r.code != http.StatusOK || plan.TaskID != tk.ID || len(plan.ResourceChanges) != 2 || plan.Policy == nil ||
		plan.Policy.Decision != "deny" || plan.Policy.Stage != "post_plan" || !sameResults(plan.Policy.Results, want) {
		t.Fatalf("plan JSON: %d %s", r.code, r.body)
	}
	text := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan?format=text", polKey("pol-viewer"), nil)
	if text.code != http.StatusOK || !strings.Contains(string(text.body), "# terraform_data.db will be created") ||
		!strings.Contains(string(text.body), "\nPolicy check (post_plan): deny\n  deny pol-post-conftest (v1): terraform_data.db: creating a database is not allowed here\n") {
		t.Fatalf("plan text: %d\n%s", text.code, text.body)
	}
}

// 3. require_approval makes a plan wait whatever the task's approval
// mode; another operator approves and the plan is applied.
func testPolicyRequireApproval(t *testing.T, dev *devProc) {
	const rego = `package terratask.approve

require_approval contains msg if {
	input.terratask.task.workspace == "pol-approve"
	some rc in input.resource_changes
	rc.address == "terraform_data.db"
	"create" in rc.change.actions
	msg := "a person reviews every new database"
}
`
	mustPutPolicy(t, dev, "pol-approve", rego, http.StatusCreated, 1)
	tk := createAs(t, dev, polKey("pol-op-one"), reviewBody(t, "pol-approve", "pol-approve", 1, map[string]any{"approval": "none"}))
	want := []polResult{{"pol-approve", 1, "require_approval", "a person reviews every new database"}}
	waitWaiting(t, dev, tk.ID)
	st := polStatusOf(t, dev, tk.ID)
	if p := st.Metadata.Policy; st.Status != "waiting_approval" || p == nil || p.Decision != "require_approval" || p.Stage != "post_plan" ||
		!sameResults(p.Results, want) || !hasRef(p.Policies, "pol-approve", 1, rego) {
		t.Fatalf("status while waiting: %+v (policy %+v)", st, st.Metadata.Policy)
	}
	if p := polTaskOf(t, dev, tk.ID).Policy; p == nil || p.Decision != "require_approval" || !sameResults(p.Results, want) {
		t.Fatalf("task's policy while waiting: %+v", p)
	}
	if fi, err := os.Stat(polWorkDir(dev, tk.ID)); err != nil || !fi.IsDir() {
		t.Fatalf("the waiting task's work dir: %v", err)
	}
	r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", polKey("pol-op-two"), nil)
	var plan struct {
		Policy *polCheck `json:"policy"`
	}
	decodeInto(t, r, "plan", &plan)
	if r.code != http.StatusOK || plan.Policy == nil || plan.Policy.Decision != "require_approval" || !sameResults(plan.Policy.Results, want) {
		t.Fatalf("plan JSON while waiting: %d %s", r.code, r.body)
	}
	if r := decide(t, dev, polKey("pol-op-one"), tk.ID, "approve", nil); r.code != http.StatusForbidden {
		t.Fatalf("the creator approves its own task: %d %s", r.code, r.body)
	}
	if r := decide(t, dev, polKey("pol-op-two"), tk.ID, "approve", []byte(`{"comment":"the database is fine"}`)); r.code != http.StatusOK {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	if s := waitEnd(t, dev, tk.ID); s[len(s)-1].Status != "completed" || s[len(s)-1].Metadata.ApprovedBy != "pol-op-two" {
		t.Fatalf("after approval %+v\n%s", s[len(s)-1], logText(t, dev, tk.ID))
	}
	got := polTaskOf(t, dev, tk.ID)
	if got.Result == nil || got.Result.Output["endpoint"] != "web-1" || got.Policy == nil || got.Policy.Decision != "require_approval" {
		t.Fatalf("task after apply %+v", got)
	}
	if logs := logText(t, dev, tk.ID); !strings.Contains(logs, "a policy requires it: a person reviews every new database") {
		t.Fatalf("logs:\n%s", logs)
	}
}

// 4. A warning is recorded: the task completes, the warning is in its logs.
func testPolicyWarn(t *testing.T, dev *devProc) {
	const rego = `package terratask.warnings

warn contains msg if {
	input.terratask.task.workspace == "pol-warn"
	some rc in input.resource_changes
	rc.type == "terraform_data"
	"create" in rc.change.actions
	msg := sprintf("%s is created without tags", [rc.address])
}
`
	mustPutPolicy(t, dev, "pol-warn", rego, http.StatusCreated, 1)
	tk := createAs(t, dev, polKey("pol-op-one"), reviewBody(t, "pol-warn", "pol-warn", 1, nil))
	seen := waitEnd(t, dev, tk.ID)
	if seen[len(seen)-1].Status != "completed" {
		t.Fatalf("warned task ended %+v\n%s", seen[len(seen)-1], logText(t, dev, tk.ID))
	}
	for _, s := range seen {
		if s.Status == "waiting_approval" {
			t.Fatal("a warning made the plan wait")
		}
	}
	want := []polResult{
		{"pol-warn", 1, "warn", "terraform_data.db is created without tags"},
		{"pol-warn", 1, "warn", "terraform_data.web is created without tags"},
	}
	got := polTaskOf(t, dev, tk.ID)
	if p := got.Policy; p == nil || p.Decision != "allow" || p.Stage != "post_plan" || !sameResults(p.Results, want) ||
		got.Result == nil || got.Result.Output["endpoint"] != "web-1" {
		t.Fatalf("warned task %+v (policy %+v)", got, got.Policy)
	}
	if p := polStatusOf(t, dev, tk.ID).Metadata.Policy; p == nil || p.Decision != "allow" || !sameResults(p.Results, want) {
		t.Fatalf("status metadata policy %+v", p)
	}
	var warned bool
	for _, l := range dev.logs(t, tk.ID, "?level=warn") {
		warned = warned || (strings.HasPrefix(l.Message, "policy check post_plan: allow (") &&
			strings.HasSuffix(l.Message, "; warn pol-warn (v1): terraform_data.db is created without tags; warn pol-warn (v1): terraform_data.web is created without tags"))
	}
	if !warned {
		t.Fatalf("no warn-level log line with the warnings:\n%s", logText(t, dev, tk.ID))
	}
}

// 5. Every change is a version; a task records the version it evaluated.
func testPolicyVersions(t *testing.T, dev *devProc) {
	const name = "pol-versions"
	v1 := "package terratask.versions\n\ndeny contains \"v1 says no\" if input.terratask.task.name == \"pol-versions\"\n"
	v2 := "package terratask.versions\n\ndeny contains \"v2 says no\" if input.terratask.task.name == \"pol-versions\"\n"
	admin := polKey("pol-admin")
	if r := dev.call(t, http.MethodGet, "/api/v1/policies/"+name, admin, nil); r.code != http.StatusNotFound {
		t.Fatalf("GET before the first PUT: %d %s", r.code, r.body)
	}
	first := mustPutPolicy(t, dev, name, v1, http.StatusCreated, 1)
	tk := createAs(t, dev, polKey("pol-op-one"), polParked(name, "agent-pol-versions", ""))
	checkDenied(t, dev, tk.ID, "policy_denied", "pre_plan", "deny", []polResult{{name, 1, "deny", "v1 says no"}})

	second := mustPutPolicy(t, dev, name, v2, http.StatusOK, 2)
	// The same text again: no new version.
	if again := mustPutPolicy(t, dev, name, v2, http.StatusOK, 2); again.CreatedAt != second.CreatedAt {
		t.Fatalf("an unchanged PUT wrote a version: %+v, then %+v", second, again)
	}
	r := dev.call(t, http.MethodGet, "/api/v1/policies/"+name+"?version=1", admin, nil)
	var old polView
	decodeInto(t, r, "version 1", &old)
	if r.code != http.StatusOK || old.Version != 1 || old.Rego != v1 || old.SHA256 != policy.Digest(v1) || old.CreatedAt != first.CreatedAt {
		t.Fatalf("GET ?version=1: %d %s", r.code, r.body)
	}
	r = dev.call(t, http.MethodGet, "/api/v1/policies/"+name, admin, nil)
	var cur polView
	decodeInto(t, r, "current", &cur)
	if r.code != http.StatusOK || cur.Version != 2 || cur.Rego != v2 {
		t.Fatalf("GET: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/policies/"+name+"?version=3", admin, nil); r.code != http.StatusNotFound {
		t.Fatalf("GET ?version=3: %d %s", r.code, r.body)
	}
	versions := func() []polView {
		t.Helper()
		r := dev.call(t, http.MethodGet, "/api/v1/policies/"+name+"/versions", admin, nil)
		var out struct {
			Versions []polView `json:"versions"`
		}
		decodeInto(t, r, "versions", &out)
		if r.code != http.StatusOK {
			t.Fatalf("versions: %d %s", r.code, r.body)
		}
		for _, v := range out.Versions {
			if v.Rego != "" || v.Name != name {
				t.Fatalf("versions list the text, or another name: %s", r.body)
			}
		}
		return out.Versions
	}
	if vs := versions(); len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 || vs[0].SHA256 != policy.Digest(v2) ||
		vs[1].SHA256 != policy.Digest(v1) || vs[0].Deleted || vs[1].Deleted {
		t.Fatalf("versions %+v", vs)
	}
	var list struct {
		Policies []polView `json:"policies"`
	}
	r = dev.call(t, http.MethodGet, "/api/v1/policies", admin, nil)
	decodeInto(t, r, "list", &list)
	found := false
	for _, p := range list.Policies {
		if p.Name == name {
			found = p.Version == 2 && p.Rego == "" && p.SHA256 == policy.Digest(v2)
		}
	}
	if r.code != http.StatusOK || !found {
		t.Fatalf("list: %d %s", r.code, r.body)
	}

	// A task after the update evaluates version 2.
	tk = createAs(t, dev, polKey("pol-op-one"), polParked(name, "agent-pol-versions", ""))
	got := checkDenied(t, dev, tk.ID, "policy_denied", "pre_plan", "deny", []polResult{{name, 2, "deny", "v2 says no"}})
	if !hasRef(got.Policy.Policies, name, 2, v2) {
		t.Fatalf("policies evaluated %+v", got.Policy.Policies)
	}

	// Delete: a version of its own; the policy is gone, and decides
	// nothing any more.
	if r := dev.call(t, http.MethodDelete, "/api/v1/policies/"+name, admin, nil); r.code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.code, r.body)
	}
	if vs := versions(); len(vs) != 3 || vs[0].Version != 3 || !vs[0].Deleted || vs[0].CreatedBy != "pol-admin" ||
		vs[1].Version != 2 || vs[1].Deleted || vs[2].Version != 1 {
		t.Fatalf("versions after the delete %+v", vs)
	}
	r = dev.call(t, http.MethodGet, "/api/v1/policies/"+name, admin, nil)
	if code, _, details := r.errorOf(t); r.code != http.StatusNotFound || code != "not_found" || details["name"] != name {
		t.Fatalf("GET after DELETE: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodDelete, "/api/v1/policies/"+name, admin, nil); r.code != http.StatusNotFound {
		t.Fatalf("DELETE again: %d %s", r.code, r.body)
	}
	r = dev.call(t, http.MethodGet, "/api/v1/policies", admin, nil)
	decodeInto(t, r, "list", &list)
	for _, p := range list.Policies {
		if p.Name == name {
			t.Fatalf("the deleted policy is listed: %s", r.body)
		}
	}
	tk = createAs(t, dev, polKey("pol-op-one"), polParked(name, "agent-pol-versions", ""))
	if st := waitParked(t, dev, polKey("pol-op-one"), tk.ID); st.Metadata.Policy == nil || st.Metadata.Policy.Decision != "allow" ||
		len(st.Metadata.Policy.Results) != 0 {
		t.Fatalf("a task after the delete: %+v", st.Metadata.Policy)
	}
	for _, ref := range polStatusOf(t, dev, tk.ID).Metadata.Policy.Policies {
		if ref.Name == name {
			t.Fatalf("a task after the delete evaluated %+v", ref)
		}
	}
}

// 6. Fail closed: an evaluation error fails the task with policy_error; a
// module that does not compile is refused and not stored.
func testPolicyFailClosed(t *testing.T, dev *devProc) {
	const rego = `package terratask.conflict

answer = 1 if input.terratask.task.name == "pol-conflict"

answer = 2 if input.terratask.task.name == "pol-conflict"

deny contains "unreachable" if answer == 3
`
	mustPutPolicy(t, dev, "pol-conflict", rego, http.StatusCreated, 1)
	tk := createAs(t, dev, polKey("pol-op-one"), map[string]any{"name": "pol-conflict", "agent_id": "agent-pol-conflict", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "review"), "workspace": "pol-conflict"}})
	got := checkDenied(t, dev, tk.ID, "policy_error", "pre_plan", "error", []polResult{})
	e := got.Result.Error
	const evalErr = "evaluating the policies: pol-conflict.rego:5: eval_conflict_error: complete rules must not produce multiple outputs"
	if e.Message != "the policies could not be evaluated, so the task fails closed: "+evalErr || e.Details.Error != evalErr ||
		got.Policy.Error != evalErr || !hasRef(got.Policy.Policies, "pol-conflict", 1, rego) {
		t.Fatalf("error of the failed check %+v (policy %+v)", e, got.Policy)
	}
	if logs := logText(t, dev, tk.ID); strings.Contains(logs, "picked up by") || stepStarted.MatchString(logs) ||
		!strings.Contains(logs, "policy check pre_plan: error (") {
		t.Fatalf("logs:\n%s", logs)
	}
	noState(t, dev, "pol-conflict")

	// Does not compile: msg's value is missing, so the parser stops at the
	// closing brace, line 5 column 1.
	bad := "package terratask.broken\n\ndeny contains msg if {\n\tmsg := \n}\n"
	r := putPolicy(t, dev, polKey("pol-admin"), "pol-broken", bad)
	code, msg, details := r.errorOf(t)
	problems, _ := details["problems"].([]any)
	if r.code != http.StatusBadRequest || code != "policy_invalid" || len(problems) != 1 || msg != "the policy does not compile: pol-broken.rego:5:1: unexpected } token" {
		t.Fatalf("PUT of a module that does not compile: %d %s", r.code, r.body)
	}
	p := isObject(t, "problem", problems[0])
	fieldSet(t, "problem", p, []string{"policy", "line", "column", "message"})
	if p["policy"] != "pol-broken" || isInt(t, "line", p["line"]) != 5 || isInt(t, "column", p["column"]) != 1 || isString(t, "message", p["message"]) != "unexpected } token" {
		t.Fatalf("problem %v", p)
	}
	for _, path := range []string{"/api/v1/policies/pol-broken", "/api/v1/policies/pol-broken/versions"} {
		if r := dev.call(t, http.MethodGet, path, polKey("pol-admin"), nil); r.code != http.StatusNotFound {
			t.Fatalf("GET %s after the refused PUT: %d %s", path, r.code, r.body)
		}
	}
	// A module calling a blocked builtin does not compile either.
	blocked := "package terratask.outward\n\ndeny contains msg if {\n\tresp := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1/\"})\n\tmsg := resp.body\n}\n"
	r = putPolicy(t, dev, polKey("pol-admin"), "pol-outward", blocked)
	if code, msg, details := r.errorOf(t); r.code != http.StatusBadRequest || code != "policy_invalid" || len(details["problems"].([]any)) != 1 ||
		msg != "the policy does not compile: pol-outward.rego:4:10: undefined function http.send" {
		t.Fatalf("PUT of a module calling http.send: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/policies/pol-outward", polKey("pol-admin"), nil); r.code != http.StatusNotFound {
		t.Fatalf("GET after the refused PUT: %d %s", r.code, r.body)
	}
}

// 7. A schedule's run is checked like any task.
func testPolicySchedule(t *testing.T, dev *devProc) {
	const rego = `package terratask.scheduled

deny contains msg if {
	input.terratask.task.name == "pol-scheduled"
	input.terratask.task.schedule_id != ""
	msg := sprintf("schedule %s may not run pol-scheduled", [input.terratask.task.schedule_id])
}
`
	mustPutPolicy(t, dev, "pol-scheduled", rego, http.StatusCreated, 1)
	template := map[string]any{"name": "pol-scheduled", "agent_id": "agent-pol-sched", "runner_id": "local",
		"parameters": map[string]any{"files": polTinyFiles, "workspace": "pol-scheduled"}}
	b, _ := json.Marshal(map[string]any{"name": "pol scheduled", "cron": "@yearly", "paused": true, "template": template})
	r := dev.call(t, http.MethodPost, "/api/v1/schedules", polKey("pol-op-one"), b)
	if r.code != http.StatusOK {
		t.Fatalf("create schedule: %d %s", r.code, r.body)
	}
	id := r.object(t)["id"].(string)
	defer dev.call(t, http.MethodDelete, "/api/v1/schedules/"+id, polKey("pol-admin"), nil)
	if r := dev.call(t, http.MethodPost, "/api/v1/schedules/"+id+"/trigger", polKey("pol-op-one"), nil); r.code != http.StatusOK {
		t.Fatalf("trigger: %d %s", r.code, r.body)
	}
	var started []Task
	waitFor(t, time.Minute, "the triggered task", func() bool {
		dev.request(t, http.MethodGet, "/api/v1/tasks?schedule="+id, nil, &started)
		return len(started) == 1
	})
	checkDenied(t, dev, started[0].ID, "policy_denied", "pre_plan", "deny",
		[]polResult{{"pol-scheduled", 1, "deny", "schedule " + id + " may not run pol-scheduled"}})
	if logs := logText(t, dev, started[0].ID); strings.Contains(logs, "picked up by") {
		t.Fatalf("logs:\n%s", logs)
	}
	noState(t, dev, "pol-scheduled")
	// The same task created directly passes the check.
	tk := createAs(t, dev, polKey("pol-op-one"), polParked("pol-scheduled", "agent-pol-sched", ""))
	if st := waitParked(t, dev, polKey("pol-op-one"), tk.ID); st.Metadata.Policy == nil || st.Metadata.Policy.Decision != "allow" || len(st.Metadata.Policy.Results) != 0 {
		t.Fatalf("the unscheduled task: %+v", st.Metadata.Policy)
	}
}

// polMCP connects to /mcp on dev with key.
func polMCP(t *testing.T, ctx context.Context, dev *devProc, key string) *mcpsdk.ClientSession {
	t.Helper()
	tr := &mcpsdk.StreamableClientTransport{Endpoint: dev.api + "/mcp", HTTPClient: &http.Client{Transport: keyTransport{key}}}
	s, err := mcpsdk.NewClient(&mcpsdk.Implementation{Name: "e2e-policies", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connecting to /mcp: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// 8. An agent reads why its task was denied through MCP, fixes it, and the
// fixed task passes.
func testPolicyMCP(t *testing.T, dev *devProc) {
	const rego = `package terratask.agents

deny contains msg if {
	input.terratask.task.name == "pol-mcp"
	input.terratask.key.agent == "agent-pol"
	not input.terratask.task.metadata.ticket
	msg := "tasks of agent agent-pol must name their change ticket: set metadata.ticket"
}
`
	mustPutPolicy(t, dev, "pol-mcp", rego, http.StatusCreated, 1)
	const message = "tasks of agent agent-pol must name their change ticket: set metadata.ticket"
	ctx := waitCtx(t, 3*time.Minute)
	s := polMCP(t, ctx, dev, polKey("pol-bot"))
	created, text, isErr := call(t, ctx, s, "create_task", map[string]any{"name": "pol-mcp", "agent_id": "agent-pol", "runner_id": "local",
		"parameters": map[string]any{"files": polTinyFiles}})
	id, _ := created["id"].(string)
	if isErr || !strings.HasPrefix(id, "task-") {
		t.Fatalf("create_task: %s", text)
	}
	var waited map[string]any
	for i := 0; ; i++ {
		waited, text, isErr = call(t, ctx, s, "wait_for_task", map[string]any{"task_id": id, "timeout_seconds": 30})
		if isErr {
			t.Fatalf("wait_for_task: %s", text)
		}
		if waited["done"] == true {
			break
		}
		if waited["timed_out"] != true || i > 4 {
			t.Fatalf("wait_for_task: %s", text)
		}
	}
	if waited["status"] != "failed" || !strings.Contains(text, "policy_denied") || !strings.Contains(text, message) {
		t.Fatalf("wait_for_task's answer: %s", text)
	}
	tk, text, isErr := call(t, ctx, s, "get_task", map[string]any{"task_id": id})
	if isErr || !strings.Contains(text, "denied by policy: "+message) || !strings.Contains(text, `"rule":"deny"`) {
		t.Fatalf("get_task's answer: %s", text)
	}
	var check struct {
		Policy polCheck `json:"policy"`
	}
	b, _ := json.Marshal(tk)
	if err := json.Unmarshal(b, &check); err != nil || check.Policy.Decision != "deny" || check.Policy.Stage != "pre_plan" ||
		!sameResults(check.Policy.Results, []polResult{{"pol-mcp", 1, "deny", message}}) {
		t.Fatalf("get_task's policy %+v (%v): %s", check.Policy, err, text)
	}
	if _, text, isErr := call(t, ctx, s, "get_task_logs", map[string]any{"task_id": id, "level": "error"}); isErr ||
		!strings.Contains(text, "deny pol-mcp (v1): "+message) {
		t.Fatalf("get_task_logs: %s", text)
	}
	// The agent follows the message: the fixed task passes the check.
	fixed, text, isErr := call(t, ctx, s, "create_task", map[string]any{"name": "pol-mcp", "agent_id": "agent-pol", "runner_id": "nobody-serves-this",
		"metadata": map[string]any{"ticket": "OPS-21"}, "parameters": map[string]any{"files": polTinyFiles}})
	fid, _ := fixed["id"].(string)
	if isErr || fid == "" {
		t.Fatalf("create_task: %s", text)
	}
	if st := waitParked(t, dev, polKey("pol-bot"), fid); st.Metadata.Policy == nil || st.Metadata.Policy.Decision != "allow" {
		t.Fatalf("the fixed task: %+v", st.Metadata.Policy)
	}
}

// 9. Who may manage and read policies; the dry run.
func testPolicyAuthz(t *testing.T, dev *devProc) {
	const name = "pol-authz"
	const rego = `package terratask.authz

deny contains "pol-authz: no destroy" if {
	input.terratask.task.name == "pol-authz"
	input.terratask.task.action == "destroy"
}
`
	mustPutPolicy(t, dev, name, rego, http.StatusCreated, 1)
	body, _ := json.Marshal(map[string]string{"rego": rego})
	for _, key := range []string{"pol-viewer", "pol-op-one", "pol-bot"} {
		for _, c := range []struct {
			method, path string
			body         []byte
		}{
			{http.MethodGet, "/api/v1/policies", nil},
			{http.MethodGet, "/api/v1/policies/" + name, nil},
			{http.MethodGet, "/api/v1/policies/" + name + "/versions", nil},
			{http.MethodPut, "/api/v1/policies/" + name, body},
			{http.MethodPut, "/api/v1/policies/pol-authz-new", body},
			{http.MethodDelete, "/api/v1/policies/" + name, nil},
		} {
			r := dev.call(t, c.method, c.path, polKey(key), c.body)
			if code, _, _ := r.errorOf(t); r.code != http.StatusForbidden || code != "forbidden" {
				t.Errorf("%s: %s %s: %d %s", key, c.method, c.path, r.code, r.body)
			}
		}
	}
	// Nothing changed.
	if vs := dev.call(t, http.MethodGet, "/api/v1/policies/"+name+"/versions", polKey("pol-admin"), nil); len(vs.object(t)["versions"].([]any)) != 1 {
		t.Fatalf("versions after the refused writes: %s", vs.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/policies/pol-authz-new", polKey("pol-admin"), nil); r.code != http.StatusNotFound {
		t.Fatalf("a refused PUT stored: %d %s", r.code, r.body)
	}

	// Another org's admin: this org's policy does not exist for it, and its
	// org has none.
	other := polKey("pol-other")
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/policies/" + name},
		{http.MethodGet, "/api/v1/policies/" + name + "/versions"},
		{http.MethodDelete, "/api/v1/policies/" + name},
	} {
		r := dev.call(t, c.method, c.path, other, nil)
		if code, _, _ := r.errorOf(t); r.code != http.StatusNotFound || code != "not_found" {
			t.Errorf("other org: %s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/policies", other, nil); r.code != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"policies":[]}` {
		t.Fatalf("other org's list: %d %s", r.code, r.body)
	}

	evaluate := func(key string, req map[string]any) (reply, polCheck) {
		t.Helper()
		b, _ := json.Marshal(req)
		r := dev.call(t, http.MethodPost, "/api/v1/policies/evaluate", key, b)
		var out polCheck
		if r.code == http.StatusOK {
			decodeInto(t, r, "evaluate", &out)
			fieldSet(t, "dry run", r.object(t), []string{"decision", "stage", "results", "policies"}, "error")
		}
		return r, out
	}
	dry := func(agent, action string) map[string]any {
		return map[string]any{"name": name, "agent_id": agent, "runner_id": "local",
			"parameters": map[string]any{"files": polTinyFiles, "action": action}}
	}
	// The agent-bound key dry-runs its own agent's task.
	r, out := evaluate(polKey("pol-bot"), map[string]any{"stage": "pre_plan", "task": dry("agent-pol", "destroy")})
	if r.code != http.StatusOK || out.Decision != "deny" || out.Stage != "pre_plan" ||
		!sameResults(out.Results, []polResult{{name, 1, "deny", "pol-authz: no destroy"}}) || !hasRef(out.Policies, name, 1, rego) {
		t.Fatalf("the agent's dry run: %d %s", r.code, r.body)
	}
	r, out = evaluate(polKey("pol-bot"), map[string]any{"stage": "pre_plan", "task": dry("agent-pol", "apply")})
	if r.code != http.StatusOK || out.Decision != "allow" || len(out.Results) != 0 {
		t.Fatalf("the agent's dry run of an apply: %d %s", r.code, r.body)
	}
	if r, _ := evaluate(polKey("pol-bot"), map[string]any{"stage": "pre_plan", "task": dry("agent-not-pol", "apply")}); r.code != http.StatusForbidden {
		t.Fatalf("the agent's dry run of another agent's task: %d %s", r.code, r.body)
	}
	r, out = evaluate(polKey("pol-viewer"), map[string]any{"stage": "pre_plan", "task": dry("agent-pol-dry", "destroy")})
	if r.code != http.StatusOK || out.Decision != "deny" {
		t.Fatalf("the viewer's dry run: %d %s", r.code, r.body)
	}
	// A draft, tried before it is pushed: it denies what the stored
	// policies allow, and is not stored.
	draft := `package terratask.authzdraft

deny contains msg if {
	input.terratask.task.name == "pol-authz"
	input.terratask.task.agent_id == "agent-pol-dry"
	msg := sprintf("draft: %s may not apply", [input.terratask.task.agent_id])
}
`
	r, out = evaluate(polKey("pol-admin"), map[string]any{"stage": "pre_plan", "task": dry("agent-pol-dry", "apply"), "policies": map[string]string{"pol-authz-draft": draft}})
	if r.code != http.StatusOK || out.Decision != "deny" ||
		!sameResults(out.Results, []polResult{{"pol-authz-draft", 0, "deny", "draft: agent-pol-dry may not apply"}}) {
		t.Fatalf("the draft's dry run: %d %s", r.code, r.body)
	}
	// A draft in place of the stored policy of its name.
	r, out = evaluate(polKey("pol-admin"), map[string]any{"stage": "pre_plan", "task": dry("agent-pol-dry", "destroy"),
		"policies": map[string]string{name: "package terratask.authz\n"}})
	if r.code != http.StatusOK || out.Decision != "allow" || len(out.Results) != 0 {
		t.Fatalf("a draft replacing the stored policy: %d %s", r.code, r.body)
	}
	// A draft that does not compile: its problems.
	r, _ = evaluate(polKey("pol-admin"), map[string]any{"stage": "pre_plan", "task": dry("agent-pol-dry", "apply"), "policies": map[string]string{"pol-authz-draft": "package x\n\ndeny contains if\n"}})
	if code, _, details := r.errorOf(t); r.code != http.StatusBadRequest || code != "policy_invalid" || len(details["problems"].([]any)) == 0 {
		t.Fatalf("a draft that does not compile: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/policies/pol-authz-draft", polKey("pol-admin"), nil); r.code != http.StatusNotFound {
		t.Fatalf("the draft was stored: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks?agent=agent-pol-dry", polKey("pol-admin"), nil); r.code != http.StatusOK ||
		r.header.Get("X-Total-Count") != "0" || len(r.array(t)) != 0 {
		t.Fatalf("a dry run created a task: %d %v %s", r.code, r.header, r.body)
	}

	// An org without policies: nothing changes, its tasks carry no check.
	r, out = evaluate(other, map[string]any{"stage": "pre_plan", "task": dry("agent-pol-other", "destroy")})
	if r.code != http.StatusOK || out.Decision != "allow" || len(out.Results) != 0 || len(out.Policies) != 0 {
		t.Fatalf("the other org's dry run: %d %s", r.code, r.body)
	}
	tk := createAs(t, dev, other, polParked(name, "agent-pol-other", "pol-authz"))
	otherDev := dev.as(other)
	if st := waitParked(t, otherDev, other, tk.ID); st.Metadata.Policy != nil {
		t.Fatalf("a task of an org without policies has a check: %+v", st.Metadata.Policy)
	}
	r = dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID, other, nil)
	if _, ok := r.object(t)["policy"]; r.code != http.StatusOK || ok {
		t.Fatalf("the other org's task: %d %s", r.code, r.body)
	}
	if strings.Contains(logText(t, otherDev, tk.ID), "policy check") {
		t.Fatalf("logs of the other org's task:\n%s", logText(t, otherDev, tk.ID))
	}
}

// A dry run evaluates the input the task's own check evaluates: a policy
// that denies with its whole input (less the task's ID and the time) gives
// the same message in both.
func testPolicyDryRunMatches(t *testing.T, dev *devProc) {
	const rego = `package terratask.dryrunsame

deny contains msg if {
	input.terratask.task.name == "pol-dry-same"
	msg := json.marshal({
		"key": input.terratask.key, "org": input.terratask.org, "stage": input.terratask.stage,
		"task": object.remove(input.terratask.task, ["id"]),
	})
}
`
	mustPutPolicy(t, dev, "pol-dry-same", rego, http.StatusCreated, 1)
	body := map[string]any{"name": "pol-dry-same", "agent_id": "agent-pol-dry-same", "runner_id": "nobody-serves-this",
		"metadata": map[string]any{"ticket": "OPS-7"},
		"parameters": map[string]any{"files": polTinyFiles, "variables": map[string]any{"region": "eu"},
			"sensitive_variables": map[string]any{"token": "tok-pol-dry-same"}}}
	b, _ := json.Marshal(map[string]any{"stage": "pre_plan", "task": body})
	r := dev.call(t, http.MethodPost, "/api/v1/policies/evaluate", polKey("pol-op-one"), b)
	var out polCheck
	decodeInto(t, r, "dry run", &out)
	if r.code != http.StatusOK || out.Decision != "deny" || len(out.Results) != 1 || strings.Contains(string(r.body), "tok-pol-dry-same") {
		t.Fatalf("dry run: %d %s", r.code, r.body)
	}
	tk := createAs(t, dev, polKey("pol-op-one"), body)
	checkDenied(t, dev, tk.ID, "policy_denied", "pre_plan", "deny", out.Results)
}

// 10. The post_plan input holds no secret value: sensitive variables and
// sensitive values in the plan are masked.
func testPolicySecrets(t *testing.T, dev *devProc) {
	const secretValue = "pw-e2e-S3cret-pol-secret"
	walker := `package terratask.secretwalk

deny contains msg if {
	input.terratask.task.workspace == "pol-secret"
	walk(input, [path, value])
	is_string(value)
	contains(value, "` + secretValue + `")
	msg := sprintf("the policy input holds the secret at %v", [path])
}
`
	control := `package terratask.secretnames

warn contains msg if {
	input.terratask.task.workspace == "pol-secret"
	"password" in input.terratask.task.variables
	msg := sprintf("variable password: %v", [input.variables.password.value])
}

warn contains msg if {
	input.terratask.task.workspace == "pol-secret"
	some rc in input.resource_changes
	rc.address == "terraform_data.db"
	msg := sprintf("db input: %v", [json.marshal(rc.change.after.input)])
}
`
	mustPutPolicy(t, dev, "pol-secret-walk", walker, http.StatusCreated, 1)
	mustPutPolicy(t, dev, "pol-secret-names", control, http.StatusCreated, 1)
	// The walker does find the secret where it is: a dry run of a plan
	// that holds it.
	b, _ := json.Marshal(map[string]any{"stage": "post_plan", "task": reviewBody(t, "pol-secret", "pol-secret", 1, nil),
		"plan": map[string]any{"format_version": "1.2", "variables": map[string]any{"password": map[string]any{"value": secretValue}}}})
	r := dev.call(t, http.MethodPost, "/api/v1/policies/evaluate", polKey("pol-admin"), b)
	var out polCheck
	decodeInto(t, r, "dry run", &out)
	// The control policy reads the value the dry run was given.
	if r.code != http.StatusOK || out.Decision != "deny" || !sameResults(out.Results, []polResult{
		{"pol-secret-names", 1, "warn", "variable password: " + secretValue},
		{"pol-secret-walk", 1, "deny", `the policy input holds the secret at ["variables", "password", "value"]`},
	}) {
		t.Fatalf("the walker's dry run: %d %s", r.code, r.body)
	}

	tk := createAs(t, dev, polKey("pol-op-one"), reviewBody(t, "pol-secret", "pol-secret", 1, nil))
	if s := waitEnd(t, dev, tk.ID); s[len(s)-1].Status != "completed" {
		t.Fatalf("the task with a secret ended %+v\n%s", s[len(s)-1], logText(t, dev, tk.ID))
	}
	got := polTaskOf(t, dev, tk.ID)
	want := []polResult{
		{"pol-secret-names", 1, "warn", `db input: {"password":"(sensitive)","size":1}`},
		{"pol-secret-names", 1, "warn", "variable password: (sensitive)"},
	}
	if p := got.Policy; p == nil || p.Decision != "allow" || p.Stage != "post_plan" || !sameResults(p.Results, want) ||
		!hasRef(p.Policies, "pol-secret-walk", 1, walker) {
		t.Fatalf("the task's policy %+v", got.Policy)
	}
	for _, what := range []string{"/api/v1/tasks/" + tk.ID, "/api/v1/tasks/" + tk.ID + "/status", "/api/v1/tasks/" + tk.ID + "/plan",
		"/api/v1/tasks/" + tk.ID + "/logs?limit=10000"} {
		if r := dev.call(t, http.MethodGet, what, polKey("pol-admin"), nil); r.code != http.StatusOK || strings.Contains(string(r.body), secretValue) {
			t.Fatalf("%s: %d, holds the secret: %s", what, r.code, r.body)
		}
	}
}

// The policies of an org kept in --policy-dir: listed with their source,
// closed to the API, reloaded on SIGHUP.
func testPolicyDir(t *testing.T, dev *devProc, dir string) {
	key := polKey("pol-gitops")
	path := filepath.Join(dir, "guard.rego")
	get := func() polView {
		t.Helper()
		r := dev.call(t, http.MethodGet, "/api/v1/policies/guard", key, nil)
		var v polView
		decodeInto(t, r, "GET guard", &v)
		if r.code != http.StatusOK {
			t.Fatalf("GET guard: %d %s", r.code, r.body)
		}
		return v
	}
	r := dev.call(t, http.MethodGet, "/api/v1/policies", key, nil)
	var list struct {
		Policies []polView `json:"policies"`
	}
	decodeInto(t, r, "list", &list)
	if r.code != http.StatusOK || len(list.Policies) != 1 {
		t.Fatalf("gitops' policies: %d %s", r.code, r.body)
	}
	if p := list.Policies[0]; p.Name != "guard" || p.Version != 1 || p.Source != "dir:"+dir || p.CreatedBy != "policy-dir" ||
		p.SHA256 != policy.Digest(polDirV1) || p.Description != "loaded from "+path {
		t.Fatalf("the directory's policy %+v", p)
	}
	if v := get(); v.Rego != polDirV1 {
		t.Fatalf("GET guard %+v", v)
	}
	// The directory owns it.
	for _, c := range []struct {
		method string
		body   []byte
	}{{http.MethodPut, []byte(`{"rego":"package gitops.guard\n"}`)}, {http.MethodDelete, nil}} {
		r := dev.call(t, c.method, "/api/v1/policies/guard", key, c.body)
		if code, msg, _ := r.errorOf(t); r.code != http.StatusConflict || code != "conflict" || !strings.Contains(msg, "--policy-dir") {
			t.Fatalf("%s of a --policy-dir policy: %d %s", c.method, r.code, r.body)
		}
	}
	if v := get(); v.Version != 1 {
		t.Fatalf("after the refused writes %+v", v)
	}
	tk := createAs(t, dev, key, polParked("pol-gitops", "agent-gitops", ""))
	checkDenied(t, dev.as(key), tk.ID, "policy_denied", "pre_plan", "deny", []polResult{{"guard", 1, "deny", "v1: a gitops task needs metadata.owner"}})

	// Edit the file, reload.
	if err := os.WriteFile(path, []byte(polDirV2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dev.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "version 2 of the directory's policy", func() bool { return get().Version == 2 })
	if v := get(); v.Rego != polDirV2 || v.SHA256 != policy.Digest(polDirV2) || v.Source != "dir:"+dir {
		t.Fatalf("after the reload %+v", v)
	}
	vs := dev.call(t, http.MethodGet, "/api/v1/policies/guard/versions", key, nil)
	var versions struct {
		Versions []polView `json:"versions"`
	}
	decodeInto(t, vs, "versions", &versions)
	if vs.code != http.StatusOK || len(versions.Versions) != 2 || versions.Versions[0].Version != 2 || versions.Versions[1].Version != 1 {
		t.Fatalf("versions after the reload: %d %s", vs.code, vs.body)
	}
	tk = createAs(t, dev, key, polParked("pol-gitops", "agent-gitops", ""))
	checkDenied(t, dev.as(key), tk.ID, "policy_denied", "pre_plan", "deny", []polResult{{"guard", 2, "deny", "v2: a gitops task needs metadata.owner"}})
	// Org default's policies are not the directory's.
	r = dev.call(t, http.MethodGet, "/api/v1/policies/guard", polKey("pol-admin"), nil)
	if r.code != http.StatusNotFound {
		t.Fatalf("org default sees gitops' policy: %d %s", r.code, r.body)
	}
}
