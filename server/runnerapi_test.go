package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/runnerapi"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// runnerClient is the runner API client of runner id of org, holding org's
// key (what `terratask runner --org org` holds).
func runnerClient(t *testing.T, ts *testServer, base, org, id string) *runnerapi.Client {
	t.Helper()
	box, err := ts.opts.Secrets.Org(org)
	if err != nil {
		t.Fatal(err)
	}
	c, err := runnerapi.New(base, org, id, box)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRunnerAPI drives the runner API with the runner's own client over
// real HTTP and a real store: what a runner host writes instead of writing
// the store itself.
func TestRunnerAPI(t *testing.T) {
	ts := newTestServer(t, false)
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	ts.addTask(t, store.Task{ID: "task-run", Org: "org-a", RunnerID: "r1", Status: task.StatusRunning})
	ts.addTask(t, store.Task{ID: "task-done", Org: "org-a", RunnerID: "r1", Status: task.StatusCompleted})
	r1 := runnerClient(t, ts, srv.URL, "org-a", "r1")

	at := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	logs := []store.LogEntry{
		{TaskID: "task-run", Stream: "run1/planning/attempt1", Seq: 1, Timestamp: at, Level: task.LevelInfo, Message: "planning", Metadata: map[string]any{"step": "planning"}},
		{TaskID: "task-run", Stream: "run1/planning/attempt1", Seq: 2, Timestamp: at, Level: task.LevelWarn, Message: "careful"},
	}
	if err := r1.AppendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := r1.AppendLogs(ctx, logs); err != nil { // a resend after a crash
		t.Fatal(err)
	}
	got, err := ts.store.ListLogs(ctx, store.LogQuery{TaskID: "task-run", Limit: 10})
	if err != nil || len(got) != 2 || got[0].Message != "planning" || got[1].Level != task.LevelWarn || got[0].Metadata["step"] != "planning" {
		t.Fatalf("logs %+v %v", got, err)
	}

	plan := store.Plan{TaskID: "task-run", Summary: task.PlanSummary{Add: 2}, JSON: []byte(`{"x":1}`), Text: "plan", Digest: "d1"}
	if err := r1.PutPlan(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if p, err := ts.store.GetPlan(ctx, "org-a", "task-run"); err != nil || p.Summary.Add != 2 || p.Text != "plan" || p.Org != "org-a" {
		t.Fatalf("plan %+v %v", p, err)
	}
	if _, err := r1.GetPlanFile(ctx, "org-a", "task-run"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no plan file yet: %v", err)
	}
	if err := r1.PutPlanFile(ctx, store.PlanFile{TaskID: "task-run", Digest: "d1", Data: []byte{0, 1, 2, 255}}); err != nil {
		t.Fatal(err)
	}
	if f, err := r1.GetPlanFile(ctx, "org-a", "task-run"); err != nil || f.Digest != "d1" || string(f.Data) != "\x00\x01\x02\xff" {
		t.Fatalf("plan file %+v %v", f, err)
	}

	for id, want := range map[string]bool{"task-run": false, "task-done": true, "task-gone": true} {
		if ended, err := r1.TaskEnded(ctx, "org-a", id); err != nil || ended != want {
			t.Errorf("TaskEnded(%s) = %v %v, want %v", id, ended, err, want)
		}
	}

	if err := r1.PutRunnerHost(ctx, store.RunnerHost{HostID: "host-1", Identity: "r1@host-1", StartedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if hs, err := ts.store.RunnerHosts(ctx, "org-a", "r1"); err != nil || len(hs) != 1 || hs[0].Identity != "r1@host-1" {
		t.Fatalf("hosts %+v %v", hs, err)
	}
}

// TestRunnerAPIKeepsEachRunnerToItsOwn is the attacker's side: a runner
// host reaches its own org's tasks of its own runner ID and nothing else,
// and no other credential opens the runner API.
func TestRunnerAPIKeepsEachRunnerToItsOwn(t *testing.T) {
	ts := newTestServer(t, false)
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	ts.addTask(t, store.Task{ID: "task-a", Org: "org-a", RunnerID: "r1", Status: task.StatusRunning})
	if err := ts.store.PutPlanFile(ctx, store.PlanFile{TaskID: "task-a", Org: "org-a", Digest: "d", Data: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	entry := []store.LogEntry{{TaskID: "task-a", Stream: "s", Seq: 1, Timestamp: time.Now().UTC(), Level: task.LevelInfo, Message: "forged"}}

	for name, c := range map[string]*runnerapi.Client{
		// Org B's runner of the same ID, with its own valid credential.
		"another org's runner of the same ID": runnerClient(t, ts, srv.URL, "org-b", "r1"),
		// Org A's runner of another ID.
		"another runner of the org": runnerClient(t, ts, srv.URL, "org-a", "r2"),
	} {
		if err := c.AppendLogs(ctx, entry); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s appended logs: %v", name, err)
		}
		if _, err := c.GetPlanFile(ctx, "org-a", "task-a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s read the plan file: %v", name, err)
		}
		if err := c.PutPlanFile(ctx, store.PlanFile{TaskID: "task-a", Digest: "x", Data: []byte("evil")}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s replaced the plan file: %v", name, err)
		}
		if err := c.PutPlan(ctx, store.Plan{TaskID: "task-a", Text: "evil"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s wrote the plan: %v", name, err)
		}
	}
	if got, _ := ts.store.ListLogs(ctx, store.LogQuery{TaskID: "task-a", Limit: 10}); len(got) != 0 {
		t.Fatalf("forged logs stored: %+v", got)
	}
	if f, _ := ts.store.GetPlanFile(ctx, "org-a", "task-a"); string(f.Data) != "sealed" {
		t.Fatalf("plan file replaced: %q", f.Data)
	}
	if _, err := ts.store.GetPlan(ctx, "org-a", "task-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a plan was written: %v", err)
	}

	// A runner of org B cannot publish hosts of org A's runner: the
	// credential names its runner, the body cannot change it.
	b := runnerClient(t, ts, srv.URL, "org-b", "r1")
	var apiErr *runnerapi.Error
	if err := b.PutRunnerHost(ctx, store.RunnerHost{Org: "org-a", RunnerID: "r1", HostID: "h", StartedAt: time.Now(), UpdatedAt: time.Now()}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Fatalf("org b published a host of org a's runner: %v", err)
	}
	if hs, _ := ts.store.RunnerHosts(ctx, "org-a", "r1"); len(hs) != 0 {
		t.Fatalf("org a's runner has hosts: %+v", hs)
	}

	// Credentials that are not a runner's.
	orgB, _ := ts.opts.Secrets.Org("org-b")
	for name, r := range map[string]req{
		"no credential": {method: "GET", path: "/api/v1/runner/tasks/task-a"},
		"an API key":    {method: "GET", path: "/api/v1/runner/tasks/task-a", key: "k-admin-a"},
		"org b's key claiming org a": {method: "GET", path: "/api/v1/runner/tasks/task-a",
			header: [][2]string{{"Authorization", basic("org-a/r1", orgB.RunnerCredential("org-a", "r1"))}}},
		"a state credential": {method: "GET", path: "/api/v1/runner/tasks/task-a",
			header: [][2]string{{"Authorization", basic("org-a/r1", ts.stateCred("task-a.1", "org-a", "ws"))}}},
		"a user without org": {method: "GET", path: "/api/v1/runner/tasks/task-a",
			header: [][2]string{{"Authorization", basic("r1", "x")}}},
	} {
		w := ts.do(t, r)
		if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "running") {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
		decodeError(t, w)
	}

	// Bad bodies are a 400 and store nothing.
	r1 := runnerClient(t, ts, srv.URL, "org-a", "r1")
	for name, bad := range map[string][]store.LogEntry{
		"an ID the store assigns": {{TaskID: "task-a", Stream: "s", Seq: 1, ID: 7, Message: "x"}},
		"no stream":               {{TaskID: "task-a", Seq: 1, Message: "x"}},
		"seq 0":                   {{TaskID: "task-a", Stream: "s", Message: "x"}},
	} {
		if err := r1.AppendLogs(ctx, bad); !errors.As(err, &apiErr) || apiErr.Status != 400 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got, _ := ts.store.ListLogs(ctx, store.LogQuery{TaskID: "task-a", Limit: 10}); len(got) != 0 {
		t.Fatalf("bad logs stored: %+v", got)
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// TestRunnerAPICheck: a runner started with a key that is not its org's
// learns it at start.
func TestRunnerAPICheck(t *testing.T) {
	ts := newTestServer(t, false)
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(srv.Close)
	if err := runnerClient(t, ts, srv.URL, "org-a", "r1").Check(context.Background()); err != nil {
		t.Fatalf("the org's own key: %v", err)
	}
	orgB, _ := ts.opts.Secrets.Org("org-b")
	wrong, err := runnerapi.New(srv.URL, "org-a", "r1", orgB)
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "terratask keys org --org org-a") {
		t.Fatalf("org b's key as org a: %v", err)
	}
}
