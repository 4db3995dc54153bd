package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// stateEnv is a Terraform run's environment: the task's state credential in
// the variables the http backend reads, and nothing of the host's TF_*.
func stateEnv(ts *testServer, taskID, org, ws string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") {
			env = append(env, kv)
		}
	}
	return append(env, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_HTTP_USERNAME="+secret.StateUser(taskID, defaultFence), "TF_HTTP_PASSWORD="+ts.stateCred(secret.StateUser(taskID, defaultFence), org, ws))
}

// stateConfig writes a configuration of one terraform_data on the server's
// http backend for (org, ws) into a new dir.
func stateConfig(t *testing.T, base, org, ws string) string {
	t.Helper()
	dir := t.TempDir()
	addr := base + "/api/v1/state/" + org + "/" + ws
	cfg := fmt.Sprintf(`terraform {
  backend "http" {
    address        = %q
    lock_address   = "%s/lock"
    lock_method    = "POST"
    unlock_address = "%s/lock"
    unlock_method  = "DELETE"
    retry_max      = 0
  }
}
variable "v" {
  type = string
}
resource "terraform_data" "x" {
  input = var.v
}
output "v" {
  value = terraform_data.x.output
}
`, addr, addr, addr)
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// terraform runs terraform in dir and returns its combined output.
func terraform(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatalf("terraform is not on PATH (make test needs it; .ci/run installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustTerraform runs terraform and fails the test when it fails.
func mustTerraform(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := terraform(t, dir, env, args...)
	if err != nil {
		t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// defaultFence is the fence of the tests' credentials: run 1, step 0,
// attempt 0.
const defaultFence = int64(1) << 32

// stateReq is a request to a state route with a task's credential. taskID
// may end in "#N" for a credential of fence N.
func (ts *testServer) stateReq(t *testing.T, method, path, taskID, org, ws, body string, header ...[2]string) *httptest.ResponseRecorder {
	t.Helper()
	fence := defaultFence
	if id, f, ok := strings.Cut(taskID, "#"); ok {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		taskID, fence = id, n
	}
	hr := httptest.NewRequest(method, path, strings.NewReader(body))
	user := secret.StateUser(taskID, fence)
	hr.SetBasicAuth(user, ts.stateCred(user, org, ws))
	for _, kv := range header {
		hr.Header.Set(kv[0], kv[1])
	}
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, hr)
	return w
}

func (ts *testServer) setStatus(t *testing.T, id string, st task.Status) {
	t.Helper()
	if err := ts.store.ApplyTransition(t.Context(), store.Transition{ID: id, Status: st, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// TestStateBackendWithTerraform drives the state backend with the real
// terraform binary: tasks of one workspace read what earlier ones wrote,
// versions are kept, locks exclude and are fenced, stale locks are taken
// over, and credentials are bound to their task, workspace and lifetime.
func TestStateBackendWithTerraform(t *testing.T) {
	clock := &testClock{}
	ts := newTestServer(t, false, clock.option)
	hs := httptest.NewServer(ts.Handler())
	t.Cleanup(hs.Close)
	const org, ws = "org-a", "shared"
	base := "/api/v1/state/" + org + "/" + ws
	for _, id := range []string{"task-one", "task-two", "task-three"} {
		ts.addTask(t, store.Task{ID: id, Org: org, Status: task.StatusRunning})
	}

	// Task one creates the state.
	dir1 := stateConfig(t, hs.URL, org, ws)
	env1 := stateEnv(ts, "task-one", org, ws)
	mustTerraform(t, dir1, env1, "init", "-input=false")
	mustTerraform(t, dir1, env1, "apply", "-input=false", "-auto-approve", "-var", "v=first")

	w := ts.do(t, req{method: "GET", path: base + "/versions", key: "k-viewer-a"})
	var versions []api.StateVersion
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &versions) != nil || len(versions) == 0 || w.Header().Get("X-Total-Count") != fmt.Sprint(len(versions)) {
		t.Fatalf("versions after the first apply: %d %s", w.Code, w.Body)
	}
	first := versions[0]
	if first.TaskID != "task-one" || first.Lineage == "" || first.Size == 0 {
		t.Fatalf("latest version: %+v", first)
	}

	// Task two, in a fresh dir (another host), reads it: the resource is
	// updated in place, not created again, and the lineage carries on.
	dir2 := stateConfig(t, hs.URL, org, ws)
	env2 := stateEnv(ts, "task-two", org, ws)
	mustTerraform(t, dir2, env2, "init", "-input=false")
	out := mustTerraform(t, dir2, env2, "apply", "-input=false", "-auto-approve", "-var", "v=second")
	if !strings.Contains(out, "0 added, 1 changed, 0 destroyed") {
		t.Fatalf("the second task did not see the first one's state:\n%s", out)
	}
	w = ts.do(t, req{method: "GET", path: base, key: "k-admin-a"})
	var doc struct {
		Serial  int64  `json:"serial"`
		Lineage string `json:"lineage"`
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &doc) != nil || doc.Lineage != first.Lineage || doc.Serial <= first.Serial ||
		!strings.Contains(w.Body.String(), `"second"`) {
		t.Fatalf("admin read of the state: %d %s", w.Code, w.Body)
	}
	sum := md5.Sum(w.Body.Bytes())
	if w.Header().Get("Content-MD5") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("Content-MD5 %q does not match the body", w.Header().Get("Content-MD5"))
	}
	w = ts.do(t, req{method: "GET", path: base + "/versions?limit=1", key: "k-viewer-a"})
	if err := json.Unmarshal(w.Body.Bytes(), &versions); err != nil || len(versions) != 1 || versions[0].Version <= first.Version ||
		versions[0].TaskID != "task-two" || !strings.Contains(w.Header().Get("Link"), `rel="next"`) {
		t.Fatalf("versions after the second apply: %d %s %v", w.Code, w.Body, w.Header())
	}
	// Every version is kept: the first one still reads as it was.
	w = ts.do(t, req{method: "GET", path: fmt.Sprintf("%s/versions/%d", base, first.Version), key: "k-admin-a"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"first"`) || strings.Contains(w.Body.String(), `"second"`) {
		t.Fatalf("first version: %d %s", w.Code, w.Body)
	}
	// At rest the document is sealed.
	stored, err := ts.store.GetState(t.Context(), org, ws)
	if err != nil || bytes.Contains(stored.Data, []byte(doc.Lineage)) || bytes.Contains(stored.Data, []byte("second")) {
		t.Fatalf("stored state is not sealed (%v)", err)
	}

	// A lock held by a running task excludes another task.
	w = ts.stateReq(t, "POST", base+"/lock", "task-three", org, ws, `{"ID":"three-lock","Operation":"OperationTypeApply","Who":"test"}`)
	if w.Code != 200 {
		t.Fatalf("lock as task three: %d %s", w.Code, w.Body)
	}
	out, err = terraform(t, dir2, env2, "apply", "-input=false", "-auto-approve", "-lock-timeout=0s", "-var", "v=third")
	if err == nil || !strings.Contains(out, "three-lock") {
		t.Fatalf("apply under another task's lock: %v\n%s", err, out)
	}
	w = ts.do(t, req{method: "GET", path: base + "/lock", key: "k-viewer-a"})
	var lv api.StateLock
	if json.Unmarshal(w.Body.Bytes(), &lv) != nil || !lv.Locked || lv.ID != "three-lock" || lv.TaskID != "task-three" {
		t.Fatalf("lock view: %d %s", w.Code, w.Body)
	}
	// A write under a lock that is not the held one is refused (fencing).
	stateDoc := `{"version":4,"serial":99,"lineage":"` + doc.Lineage + `","resources":[]}`
	w = ts.stateReq(t, "POST", base+"?ID=old-lock", "task-two", org, ws, stateDoc)
	if w.Code != http.StatusLocked || !strings.Contains(w.Body.String(), "three-lock") {
		t.Fatalf("write under a stale lock ID: %d %s", w.Code, w.Body)
	}

	// Once task three has finished, its lock is stale: task two takes it
	// over, once its lease has run out.
	ts.setStatus(t, "task-three", task.StatusFailed)
	out, err = terraform(t, dir2, env2, "apply", "-input=false", "-auto-approve", "-lock-timeout=0s", "-var", "v=third")
	if err == nil || !strings.Contains(out, "three-lock") {
		t.Fatalf("apply while the finished task's lease is fresh: %v\n%s", err, out)
	}
	clock.ahead(store.StateLockLease + store.StateLockMargin)
	out = mustTerraform(t, dir2, env2, "apply", "-input=false", "-auto-approve", "-lock-timeout=0s", "-var", "v=third")
	if !strings.Contains(out, "1 changed") {
		t.Fatalf("apply after the stale lock:\n%s", out)
	}
	// Terraform released its lock: nothing is held.
	w = ts.do(t, req{method: "GET", path: base + "/lock", key: "k-viewer-a"})
	if json.Unmarshal(w.Body.Bytes(), &lv) != nil || lv.Locked {
		t.Fatalf("lock after apply: %s", w.Body)
	}
	// A finished task's credential no longer opens the state.
	w = ts.stateReq(t, "GET", base, "task-three", org, ws, "")
	if w.Code != http.StatusForbidden {
		t.Fatalf("finished task's credential: %d %s", w.Code, w.Body)
	}
	// An earlier attempt's lock of the same task is taken over by the next
	// (fence 10, then 20), once its lease has run out...
	for _, a := range []struct{ id, who string }{{"attempt-1", "task-two#10"}, {"attempt-2", "task-two#20"}} {
		if w := ts.stateReq(t, "POST", base+"/lock", a.who, org, ws, `{"ID":"`+a.id+`"}`); w.Code != 200 {
			t.Fatalf("lock %s: %d %s", a.id, w.Code, w.Body)
		}
		clock.ahead(store.StateLockLease + store.StateLockMargin)
	}
	// ... but the superseded attempt, still running on a lost host, can
	// neither write under its old lock nor take the lock back.
	w = ts.stateReq(t, "POST", base+"?ID=attempt-1", "task-two#10", org, ws, stateDoc)
	if w.Code != http.StatusLocked {
		t.Fatalf("write by the superseded attempt: %d %s", w.Code, w.Body)
	}
	w = ts.stateReq(t, "POST", base+"/lock", "task-two#10", org, ws, `{"ID":"attempt-1-again"}`)
	if w.Code != http.StatusLocked || !strings.Contains(w.Body.String(), "attempt-2") {
		t.Fatalf("the superseded attempt took the lock back: %d %s", w.Code, w.Body)
	}
	// Another task that learned the lock ID (any viewer can) can neither
	// write under it nor release it.
	ts.addTask(t, store.Task{ID: "task-four", Org: org, Status: task.StatusRunning})
	if w := ts.stateReq(t, "POST", base+"?ID=attempt-2", "task-four", org, ws, stateDoc); w.Code != http.StatusLocked {
		t.Fatalf("another task writing under the lock: %d %s", w.Code, w.Body)
	}
	if w := ts.stateReq(t, "DELETE", base+"/lock", "task-four", org, ws, `{"ID":"attempt-2"}`); w.Code != http.StatusLocked {
		t.Fatalf("another task releasing the lock: %d %s", w.Code, w.Body)
	}
	sum = md5.Sum([]byte(stateDoc))
	w = ts.stateReq(t, "POST", base+"?ID=attempt-2", "task-two#20", org, ws, stateDoc,
		[2]string{"Content-MD5", base64.StdEncoding.EncodeToString(sum[:])})
	if w.Code != 200 {
		t.Fatalf("write by the current attempt: %d %s", w.Code, w.Body)
	}

	// Operators break a lock with an admin key and force=true only.
	if w := ts.do(t, req{method: "DELETE", path: base + "/lock", key: "k-operator-a"}); w.Code != http.StatusForbidden {
		t.Fatalf("operator unlock: %d %s", w.Code, w.Body)
	}
	if w := ts.do(t, req{method: "DELETE", path: base + "/lock", key: "k-admin-a"}); w.Code != http.StatusBadRequest {
		t.Fatalf("admin unlock without force: %d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "DELETE", path: base + "/lock?force=true", key: "k-admin-a"})
	if json.Unmarshal(w.Body.Bytes(), &lv) != nil || w.Code != 200 || !lv.Locked || lv.ID != "attempt-2" {
		t.Fatalf("admin force unlock: %d %s", w.Code, w.Body)
	}

	// An admin key works from the terraform CLI (as the basic-auth
	// password): pull, then push the first version back (a rollback), which
	// becomes the newest version. An operator key does not.
	keyEnv := func(key string) []string {
		env := stateEnv(ts, "x", org, ws)
		return append(env[:len(env)-2], "TF_HTTP_USERNAME=ops", "TF_HTTP_PASSWORD="+key)
	}
	if out, err := terraform(t, dir2, keyEnv("k-operator-a"), "state", "pull"); err == nil {
		t.Fatalf("state pull with an operator key succeeded:\n%s", out)
	}
	pulled := mustTerraform(t, dir2, keyEnv("k-admin-a"), "state", "pull")
	if !strings.Contains(pulled, doc.Lineage) {
		t.Fatalf("state pull with the admin key:\n%s", pulled)
	}
	w = ts.do(t, req{method: "GET", path: fmt.Sprintf("%s/versions/%d", base, first.Version), key: "k-admin-a"})
	old := filepath.Join(t.TempDir(), "old.tfstate")
	if err := os.WriteFile(old, w.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Terraform refuses a lower serial unless forced.
	mustTerraform(t, dir2, keyEnv("k-admin-a"), "state", "push", "-force", old)
	w = ts.do(t, req{method: "GET", path: base + "/versions?limit=1", key: "k-viewer-a"})
	versions = nil
	if err := json.Unmarshal(w.Body.Bytes(), &versions); err != nil || len(versions) != 1 || versions[0].TaskID != "" ||
		versions[0].Lineage != first.Lineage {
		t.Fatalf("after the rollback: %s", w.Body)
	}
	out = mustTerraform(t, dir2, env2, "plan", "-input=false", "-var", "v=first")
	if !strings.Contains(out, "No changes") {
		t.Fatalf("plan after the rollback to the first version:\n%s", out)
	}
}

// TestStateVersionsArePruned: with StateVersions set, a write prunes all
// but the newest versions of its workspace.
func TestStateVersionsArePruned(t *testing.T) {
	ts := newTestServer(t, false, func(o *Options) { o.StateVersions = 2 })
	const org, ws = "org-a", "pruned"
	base := "/api/v1/state/" + org + "/" + ws
	ts.addTask(t, store.Task{ID: "task-prune", Org: org, Status: task.StatusRunning})
	for i := 1; i <= 4; i++ {
		doc := fmt.Sprintf(`{"version":4,"serial":%d,"lineage":"l","resources":[]}`, i)
		if w := ts.stateReq(t, "POST", base, "task-prune", org, ws, doc); w.Code != 200 {
			t.Fatalf("write %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := ts.do(t, req{method: "GET", path: base + "/versions", key: "k-viewer-a"})
	var vs []api.StateVersion
	if err := json.Unmarshal(w.Body.Bytes(), &vs); err != nil || w.Header().Get("X-Total-Count") != "2" ||
		len(vs) != 2 || vs[0].Version != 4 || vs[1].Version != 3 {
		t.Fatalf("versions after 4 writes keeping 2: %s %v", w.Body, w.Header())
	}
	if w := ts.do(t, req{method: "GET", path: base + "/versions/1", key: "k-admin-a"}); w.Code != http.StatusNotFound {
		t.Fatalf("a pruned version: %d %s", w.Code, w.Body)
	}
}
