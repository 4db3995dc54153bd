package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
)

// Keys of the credential set tests' own `terratask dev`.
var credKeys = []principal{
	{"cred-admin", "raw-cred-admin-4b7e", "default", "admin", ""},
	{"cred-op", "raw-cred-op-8d2a", "default", "operator", ""},
	{"cred-bot", "raw-cred-bot-1f6c", "default", "operator", "agent-cred"},
	{"cred-bot-other", "raw-cred-bot-other-5e9d", "default", "operator", "agent-other"},
	{"cred-other-admin", "raw-cred-other-admin-3a0b", "other", "admin", ""},
}

func credKey(name string) string {
	for _, p := range credKeys {
		if p.name == name {
			return p.raw
		}
	}
	panic(name)
}

// credEnv is the credential set tests' dev, its values and the tasks whose
// outputs the canaries read at the end.
type credEnv struct {
	dev *devProc
	// marker starts every value of every set: the canaries look for the
	// values, the policy for the marker.
	marker string
	mu     sync.Mutex
	tasks  []string
}

func (e *credEnv) value(name string) string { return e.marker + "-" + name }

// values are every value the tests put in a set.
func (e *credEnv) values() []string {
	var out []string
	for _, n := range []string{"x", "token", "db", "audit", "local", "revoked-x", "r1", "r2", "other-x"} {
		out = append(out, e.value(n))
	}
	return out
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// putSet writes a set as key and checks the answer's code.
func (e *credEnv) putSet(t *testing.T, key, name string, body map[string]any, code int) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	r := e.dev.call(t, http.MethodPut, "/api/v1/credential-sets/"+name, credKey(key), b)
	e.noValues(t, "PUT "+name, r.body)
	if r.code != code {
		t.Fatalf("PUT %s as %s: %d %s", name, key, r.code, r.body)
	}
	return r.object(t)
}

// run creates a task of the credentials fixture as key, on workspace and
// runner, naming sets; want is the create's status code.
func (e *credEnv) create(t *testing.T, key, agent, workspace, runner string, sets []string, extra map[string]any, want int) (Task, reply) {
	t.Helper()
	params := map[string]any{"files": fixture(t, "credentials"), "workspace": workspace}
	if sets != nil {
		params["credentials"] = sets
	}
	for k, v := range extra {
		params[k] = v
	}
	b, _ := json.Marshal(map[string]any{"name": "credentials " + workspace, "agent_id": agent, "runner_id": runner, "parameters": params})
	r := e.dev.call(t, http.MethodPost, "/api/v1/tasks", credKey(key), b)
	e.noValues(t, "create", r.body)
	if r.code != want {
		t.Fatalf("create on %s as %s: %d %s", workspace, key, r.code, r.body)
	}
	var tk Task
	if want == http.StatusOK {
		_ = json.Unmarshal(r.body, &tk)
		e.mu.Lock()
		e.tasks = append(e.tasks, tk.ID)
		e.mu.Unlock()
	}
	return tk, r
}

// completed waits for the task to complete and returns it.
func (e *credEnv) completed(t *testing.T, id string) Task {
	t.Helper()
	if last := waitEnd(t, e.dev, id); last[len(last)-1].Status != "completed" {
		t.Fatalf("task %s ended %+v\n%v", id, last[len(last)-1], e.dev.logs(t, id, "?level=warn,error"))
	}
	return e.dev.get(t, id)
}

// outputs checks the task's output hashes.
func outputs(t *testing.T, tk Task, x, db, audit string) {
	t.Helper()
	out := tk.Result.Output
	if out["x_sha"] != sha(x) || out["db_sha"] != sha(db) || out["audit_sha"] != sha(audit) {
		t.Fatalf("task %s's outputs %v: the sets' values did not reach Terraform as they should", tk.ID, out)
	}
}

// noValues fails when b holds a value of a set.
func (e *credEnv) noValues(t *testing.T, what string, b []byte) {
	t.Helper()
	if bytes.Contains(b, []byte(e.marker)) {
		t.Fatalf("%s shows a credential set's value: %s", what, b)
	}
}

// TestCredentialSets runs the credential set scenarios (issue 22) against
// one `terratask dev` with a keys file, a runner process of its own that
// reaches the control plane through the runner API, real Terraform and
// real Temporal; then the canaries: no value of a set in any API answer,
// log, plan, event, Temporal payload or store file.
func TestCredentialSets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysPath, credKeys)
	dev, err := startDev(filepath.Join(dir, "data"), "raw-cred-dev-admin-7c3f", "--api-keys-file", keysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	// A runner host of org default that holds no store: its steps get their
	// sets through the runner API.
	startRunner(t, dev, "cred-remote", filepath.Join(dir, "remote"), filepath.Join(dir, "remote-state"))
	e := &credEnv{dev: dev, marker: "cred-e2e-S3cret-" + randomMarker(t)}

	// A policy that sees the sets of each task (names) and denies any task
	// whose input holds a value.
	rego := `package credcanary

warn contains msg if {
	startswith(input.terratask.task.workspace, "cred-")
	msg := sprintf("credentials: %s", [concat(",", input.terratask.task.credentials)])
}

deny contains msg if {
	walk(input, [path, value])
	is_string(value)
	contains(value, "` + e.marker + `")
	msg := sprintf("a credential set's value in the policy input at %v", [path])
}
`
	pb, _ := json.Marshal(map[string]string{"rego": rego})
	if r := dev.call(t, http.MethodPut, "/api/v1/policies/cred-canary", credKey("cred-admin"), pb); r.code != http.StatusCreated {
		t.Fatalf("policy: %d %s", r.code, r.body)
	}
	e.putSet(t, "cred-admin", "cred-main", map[string]any{"description": "the main set",
		"env":                 map[string]string{"TF_VAR_x": e.value("x"), "CRED_TOKEN": e.value("token")},
		"sensitive_variables": map[string]any{"db_password": e.value("db")},
		"agents":              []string{"agent-cred"}, "workspaces": []string{"cred-*"}}, http.StatusCreated)
	e.putSet(t, "cred-admin", "cred-audit", map[string]any{"sensitive_variables": map[string]any{"audit_key": e.value("audit")},
		"workspaces": []string{"cred-audit-*"}, "attach": true}, http.StatusCreated)
	e.putSet(t, "cred-admin", "cred-local-only", map[string]any{"env": map[string]string{"LOCAL_ONLY": e.value("local")},
		"runners": []string{"local"}}, http.StatusCreated)

	t.Run("group", func(t *testing.T) {
		t.Run("NamedAndAttachedThroughTheRunnerAPI", func(t *testing.T) { t.Parallel(); testCredNamedAndAttached(t, e) })
		t.Run("OnDevsOwnRunner", func(t *testing.T) { t.Parallel(); testCredLocal(t, e) })
		t.Run("Refusals", func(t *testing.T) { t.Parallel(); testCredRefusals(t, e) })
		t.Run("ChangedAfterCreate", func(t *testing.T) { t.Parallel(); testCredChanged(t, e) })
		t.Run("Rotation", func(t *testing.T) { t.Parallel(); testCredRotation(t, e) })
		t.Run("OtherOrg", func(t *testing.T) { t.Parallel(); testCredOtherOrg(t, e) })
	})
	if !t.Failed() {
		testCredCanaries(t, e)
	}
}

// The agent's task names cred-main; cred-audit attaches itself by
// workspace; the remote runner fetches both through the runner API.
func testCredNamedAndAttached(t *testing.T, e *credEnv) {
	tk, _ := e.create(t, "cred-bot", "agent-cred", "cred-audit-1", "cred-remote", []string{"cred-main"}, nil, http.StatusOK)
	tk = e.completed(t, tk.ID)
	outputs(t, tk, e.value("x"), e.value("db"), e.value("audit"))
	logs := logText(t, e.dev, tk.ID)
	if !strings.Contains(logs, "credential sets: cred-main, cred-audit") || !strings.Contains(logs, "token=*** token_sha="+sha(e.value("token"))) {
		t.Fatalf("the steps' logs do not show the sets' values masked:\n%s", logs)
	}
	// The policy input names both sets.
	r := e.dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID, credKey("cred-bot"), nil)
	if !strings.Contains(string(r.body), "credentials: cred-main,cred-audit") {
		t.Fatalf("the policy input's credentials: %s", r.body)
	}
	// The plan shows where the value is, as sensitive.
	r = e.dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan?format=text", credKey("cred-bot"), nil)
	if r.code != 200 || !strings.Contains(string(r.body), "(sensitive") {
		t.Fatalf("plan text: %d %s", r.code, r.body)
	}
}

// dev's own runner gets the sets from the store; a set may keep to it.
func testCredLocal(t *testing.T, e *credEnv) {
	tk, _ := e.create(t, "cred-bot", "agent-cred", "cred-main-1", "local", []string{"cred-main", "cred-local-only"}, nil, http.StatusOK)
	tk = e.completed(t, tk.ID)
	outputs(t, tk, e.value("x"), e.value("db"), "")
	if logs := logText(t, e.dev, tk.ID); !strings.Contains(logs, "credential sets: cred-main, cred-local-only") {
		t.Fatalf("logs:\n%s", logs)
	}
}

// Who may not use a set is told so at create, naming the set.
func testCredRefusals(t *testing.T, e *credEnv) {
	for _, c := range []struct {
		what, key, agent, ws, runner string
		sets                         []string
		code                         int
		set, scope                   string
	}{
		{"another agent's key", "cred-bot-other", "agent-other", "cred-other-1", "local", []string{"cred-main"}, 403, "cred-main", "agents"},
		{"a workspace the set does not serve", "cred-bot", "agent-cred", "prod-1", "local", []string{"cred-main"}, 403, "cred-main", "workspaces"},
		{"a runner the set does not serve", "cred-bot", "agent-cred", "cred-main-2", "cred-remote", []string{"cred-local-only"}, 403, "cred-local-only", "runners"},
		{"a set that does not exist", "cred-bot", "agent-cred", "cred-main-2", "local", []string{"cred-nope"}, 400, "cred-nope", ""},
	} {
		_, r := e.create(t, c.key, c.agent, c.ws, c.runner, c.sets, nil, c.code)
		code, msg, details := r.errorOf(t)
		if details["set"] != c.set || details["field"] != "parameters.credentials" || !strings.Contains(msg, "credential set "+c.set) ||
			(c.scope != "" && (details["scope"] != c.scope || code != "forbidden")) {
			t.Errorf("%s: %d %s", c.what, r.code, r.body)
		}
	}
	// A task may not override a set's value.
	_, r := e.create(t, "cred-bot", "agent-cred", "cred-main-2", "local", []string{"cred-main"},
		map[string]any{"env": map[string]string{"CRED_TOKEN": "mine"}}, http.StatusBadRequest)
	if _, msg, _ := r.errorOf(t); !strings.Contains(msg, "CRED_TOKEN is set by both the task and credential set cred-main") {
		t.Errorf("a clash: %s", r.body)
	}
}

// A set changed after the task was created no longer serves it: its next
// step fails, naming the set.
func testCredChanged(t *testing.T, e *credEnv) {
	e.putSet(t, "cred-admin", "cred-revoked", map[string]any{"env": map[string]string{"TF_VAR_x": e.value("revoked-x")},
		"sensitive_variables": map[string]any{"db_password": e.value("db")}, "agents": []string{"agent-cred"}}, http.StatusCreated)
	tk, _ := e.create(t, "cred-bot", "agent-cred", "cred-revoked-1", "local", []string{"cred-revoked"}, map[string]any{"approval": "required"}, http.StatusOK)
	waitWaiting(t, e.dev, tk.ID)
	// Scopes change, values kept (no env, no sensitive_variables).
	set := e.putSet(t, "cred-admin", "cred-revoked", map[string]any{"agents": []string{"agent-nobody"}}, http.StatusOK)
	if len(set["env_names"].([]any)) != 1 {
		t.Fatalf("the put dropped the values: %v", set)
	}
	if r := decide(t, e.dev, credKey("cred-op"), tk.ID, "approve", nil); r.code != http.StatusOK {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	last := waitEnd(t, e.dev, tk.ID)
	got := e.dev.get(t, tk.ID)
	if last[len(last)-1].Status != "failed" || got.Result == nil || got.Result.Error == nil || got.Result.Error.Code != "configuration_error" ||
		!strings.Contains(got.Result.Error.Message, "credential set cred-revoked") || !strings.Contains(got.Result.Error.Message, `agent "agent-cred"`) {
		t.Fatalf("a set that no longer serves the task: %+v %+v", last[len(last)-1], got.Result)
	}
}

// New values apply to the tasks after them; the values a put leaves out
// stay. (Each task on a workspace of its own: the fixture keeps x in a
// resource, and a later plan on the same state would show the old value
// where Terraform does not know it is sensitive, which no step's masker
// knows after the rotation; README, "Credentials".)
func testCredRotation(t *testing.T, e *credEnv) {
	e.putSet(t, "cred-admin", "cred-rotate", map[string]any{"env": map[string]string{"TF_VAR_x": e.value("r1")},
		"sensitive_variables": map[string]any{"db_password": e.value("db")}, "agents": []string{"agent-cred"}}, http.StatusCreated)
	tk, _ := e.create(t, "cred-bot", "agent-cred", "cred-rotate-1", "local", []string{"cred-rotate"}, nil, http.StatusOK)
	outputs(t, e.completed(t, tk.ID), e.value("r1"), e.value("db"), "")
	e.putSet(t, "cred-admin", "cred-rotate", map[string]any{"env": map[string]string{"TF_VAR_x": e.value("r2")},
		"agents": []string{"agent-cred"}}, http.StatusOK)
	tk, _ = e.create(t, "cred-bot", "agent-cred", "cred-rotate-2", "local", []string{"cred-rotate"}, nil, http.StatusOK)
	outputs(t, e.completed(t, tk.ID), e.value("r2"), e.value("db"), "")
}

// Another org's admin neither sees nor uses org default's sets; a set of
// the same name it writes is its own.
func testCredOtherOrg(t *testing.T, e *credEnv) {
	other := credKey("cred-other-admin")
	if r := e.dev.call(t, http.MethodGet, "/api/v1/credential-sets/cred-main", other, nil); r.code != http.StatusNotFound {
		t.Fatalf("org other reads org default's set: %d %s", r.code, r.body)
	}
	if r := e.dev.call(t, http.MethodGet, "/api/v1/credential-sets", other, nil); r.code != 200 || strings.Contains(string(r.body), "cred-main") {
		t.Fatalf("org other's list: %d %s", r.code, r.body)
	}
	if r := e.dev.call(t, http.MethodDelete, "/api/v1/credential-sets/cred-main", other, nil); r.code != http.StatusNotFound {
		t.Fatalf("org other deletes org default's set: %d %s", r.code, r.body)
	}
	_, r := e.create(t, "cred-other-admin", "agent-cred", "cred-elsewhere", "local", []string{"cred-main"}, nil, http.StatusBadRequest)
	if _, msg, details := r.errorOf(t); details["set"] != "cred-main" || !strings.Contains(msg, "does not exist") {
		t.Fatalf("org other names org default's set: %s", r.body)
	}
	e.putSet(t, "cred-other-admin", "cred-main", map[string]any{"env": map[string]string{"TF_VAR_x": e.value("other-x")}}, http.StatusCreated)
	r = e.dev.call(t, http.MethodGet, "/api/v1/credential-sets/cred-main", credKey("cred-admin"), nil)
	if set := r.object(t); set["description"] != "the main set" || len(set["env_names"].([]any)) != 2 || set["updated_by"] != "cred-admin" {
		t.Fatalf("org default's set changed: %s", r.body)
	}
}

// testCredCanaries: no value of any set anywhere a person, an agent or
// Temporal sees, nor in the store's or Temporal's files.
func testCredCanaries(t *testing.T, e *credEnv) {
	admin := credKey("cred-admin")
	values := e.values()
	check := func(what string, b []byte) {
		t.Helper()
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a credential set's value", what)
			}
		}
	}
	for _, path := range []string{"/api/v1/credential-sets", "/api/v1/credential-sets/cred-main", "/api/v1/events?limit=1000", "/api/v1/tasks?limit=1000"} {
		r := e.dev.call(t, http.MethodGet, path, admin, nil)
		if r.code != 200 {
			t.Fatalf("%s: %d %s", path, r.code, r.body)
		}
		check(path, r.body)
	}
	var msgs []proto.Message
	for _, id := range e.tasks {
		for _, suffix := range []string{"", "/status", "/logs?limit=10000", "/plan", "/plan?format=text"} {
			r := e.dev.call(t, http.MethodGet, "/api/v1/tasks/"+id+suffix, admin, nil)
			check(id+suffix, r.body)
		}
		for _, ev := range rawHistory(t, e.dev, id) {
			msgs = append(msgs, ev)
		}
		msgs = append(msgs, describeRaw(t, e.dev, id))
	}
	// Temporal: every payload encrypted, and no value even decoded (the
	// values never enter Temporal: a task's input names its sets).
	enc, _ := checkEncrypted(t, "histories of the credential tasks", msgs, values)
	r, dec := decodeThroughCodec(t, e.dev, admin, enc)
	if r.code != 200 || len(dec) != len(enc) {
		t.Fatalf("decode: %d %s", r.code, r.body)
	}
	var all bytes.Buffer
	for _, p := range dec {
		all.Write(p.GetData())
	}
	check("the decoded histories", all.Bytes())
	if !strings.Contains(all.String(), `"credential_sets":["cred-main","cred-audit"]`) {
		t.Errorf("the decoded input does not name the task's sets")
	}
	// The store and Temporal's database, in plain text.
	files, _ := filepath.Glob(filepath.Join(e.dev.dataDir, "*.db*"))
	if len(files) < 2 {
		t.Fatalf("database files %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(f), b)
	}
}
