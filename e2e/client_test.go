package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/task"
)

func newClient(t testing.TB, address, key string) *client.Client {
	t.Helper()
	c, err := client.New(address, client.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientEveryRoute drives every route of the API through package client
// against the real binary: a task from create to completion (Wait), its
// logs (Follow sees each line once), lists, runners, the state routes, and
// typed errors.
func TestClientEveryRoute(t *testing.T) {
	t.Parallel()
	ctx := waitCtx(t, 5*time.Minute)
	c := newClient(t, shared.api, shared.key)

	tk, err := c.CreateTask(ctx, api.CreateTask{Name: "client", AgentID: "agent-client", RunnerID: "local",
		Metadata:   map[string]any{"via": "client"},
		Parameters: map[string]any{"files": fixture(t, "five"), "variables": map[string]any{"greeting": "hi"}}})
	if err != nil || tk.Status != "pending" {
		t.Fatalf("create: %+v %v", tk, err)
	}
	// Follow while it runs; Wait for its end.
	followed := make(chan []api.LogEntry, 1)
	go func() {
		var seen []api.LogEntry
		err := c.Follow(ctx, tk.ID, func(e api.LogEntry) error { seen = append(seen, e); return nil }, client.PollInterval(50*time.Millisecond, 500*time.Millisecond))
		if err != nil {
			t.Errorf("follow: %v", err)
		}
		followed <- seen
	}()
	var statuses []api.Status
	done, err := c.Wait(ctx, tk.ID, client.OnStatus(func(st api.Status) { statuses = append(statuses, st) }))
	if err != nil || done.Status != "completed" || done.Result == nil || done.Result.Output["greeting"] != "hi" {
		t.Fatalf("wait: %+v %v", done, err)
	}
	if len(statuses) == 0 || statuses[len(statuses)-1].Status != "completed" {
		t.Fatalf("statuses %+v", statuses)
	}
	seen := <-followed
	// Every stored entry, once, in order: the same as one read of them all
	// (paged with the cursor).
	var all []api.LogEntry
	cursor := ""
	for {
		page, err := c.GetLogs(ctx, tk.ID, client.LogOptions{Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Logs.Logs...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(all) < 10 || !sameEntries(seen, all) {
		t.Fatalf("follow saw %d entries, the logs route has %d", len(seen), len(all))
	}
	warn, err := c.GetLogs(ctx, tk.ID, client.LogOptions{Levels: []task.Level{task.LevelWarn, task.LevelError}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range warn.Logs.Logs {
		if e.Level != task.LevelWarn && e.Level != task.LevelError {
			t.Fatalf("level filter let %s through", e.Level)
		}
	}

	// Reads and lists.
	if got, err := c.GetTask(ctx, tk.ID); err != nil || got.Metadata["via"] != "client" {
		t.Fatalf("get: %+v %v", got, err)
	}
	page, err := c.ListTasks(ctx, client.ListOptions{Agent: "agent-client", Limit: 1})
	if err != nil || len(page.Tasks) != 1 || page.Total < 1 {
		t.Fatalf("list: %+v %v", page, err)
	}
	if sp, err := c.ListAgentTasks(ctx, "agent-client", client.ListOptions{}); err != nil || len(sp.Tasks) == 0 || sp.Tasks[0].ID == "" {
		t.Fatalf("agent list: %+v %v", sp, err)
	}
	if sp, err := c.ListRunnerTasks(ctx, "local", client.ListOptions{Limit: 5}); err != nil || len(sp.Tasks) == 0 {
		t.Fatalf("runner list: %+v %v", sp, err)
	}
	if rs, err := c.ListRunners(ctx); err != nil || len(rs) == 0 {
		t.Fatalf("runners: %+v %v", rs, err)
	}
	if r, err := c.GetRunner(ctx, "local"); err != nil || r.Status != "online" {
		t.Fatalf("runner: %+v %v", r, err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health: %+v %v", h, err)
	}
	if r, err := c.Ready(ctx); err != nil || r.Status != "ok" || r.Checks["temporal"] != "ok" {
		t.Fatalf("ready: %+v %v", r, err)
	}
	if doc, err := c.OpenAPI(ctx); err != nil || !json.Valid(doc) {
		t.Fatalf("openapi: %v", err)
	}

	// The task's state, on the server's backend (workspace = task ID).
	versions, err := c.ListStateVersions(ctx, "default", tk.ID, 0, 0)
	if err != nil || len(versions.Versions) == 0 {
		t.Fatalf("state versions: %+v %v", versions, err)
	}
	latest, err := c.GetState(ctx, "default", tk.ID)
	if err != nil || latest.Version != versions.Versions[0].Version || !bytes.Contains(latest.Data, []byte("terraform_data")) {
		t.Fatalf("state: v%d %v", latest.Version, err)
	}
	if v1, err := c.GetStateVersion(ctx, "default", tk.ID, 1); err != nil || v1.Version != 1 {
		t.Fatalf("state version 1: %v", err)
	}
	// An admin's hand repair on a workspace of its own: lock, write, unlock, break.
	ws := "client-ws-" + tk.ID[len(tk.ID)-6:]
	if st, err := c.GetState(ctx, "default", ws); err != nil || st.Data != nil {
		t.Fatalf("empty workspace: %+v %v", st, err)
	}
	lock := json.RawMessage(`{"ID":"client-lock","Operation":"OperationTypeApply","Who":"e2e"}`)
	if err := c.LockState(ctx, "default", ws, lock); err != nil {
		t.Fatal(err)
	}
	if err := c.LockState(ctx, "default", ws, json.RawMessage(`{"ID":"other-lock"}`)); !errors.Is(err, client.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	if held, err := c.GetStateLock(ctx, "default", ws); err != nil || !held.Locked || held.ID != "client-lock" {
		t.Fatalf("lock: %+v %v", held, err)
	}
	if v, err := c.PutState(ctx, "default", ws, []byte(`{"version":4,"serial":1,"lineage":"client","outputs":{},"resources":[]}`), "client-lock"); err != nil || v.Version != 1 {
		t.Fatalf("put state: %+v %v", v, err)
	}
	if rel, err := c.UnlockState(ctx, "default", ws, lock); err != nil || rel.ID != "client-lock" {
		t.Fatalf("unlock: %+v %v", rel, err)
	}
	if err := c.LockState(ctx, "default", ws, lock); err != nil {
		t.Fatal(err)
	}
	if broken, err := c.BreakStateLock(ctx, "default", ws); err != nil || broken.ID != "client-lock" {
		t.Fatalf("break: %+v %v", broken, err)
	}

	// Typed errors.
	_, err = c.GetTask(ctx, "task-doesnotexist")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || !errors.Is(err, client.ErrNotFound) || apiErr.Status != 404 || apiErr.Details["taskId"] != "task-doesnotexist" {
		t.Fatalf("unknown task: %v", err)
	}
	if _, err := c.CancelTask(ctx, tk.ID, client.CancelOptions{}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("cancel of a completed task: %v", err)
	}
	if _, err := c.ListTasks(ctx, client.ListOptions{Sort: "colour"}); !errors.As(err, &apiErr) || !errors.Is(err, client.ErrBadRequest) || apiErr.Details["parameter"] != "sort" {
		t.Fatalf("bad sort: %v", err)
	}
	if _, err := newClient(t, shared.api, "wrong-key").ListTasks(ctx, client.ListOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := newClient(t, shared.api, viewerKey).CreateTask(ctx, api.CreateTask{Name: "x", AgentID: "a", RunnerID: "local"}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("viewer create: %v", err)
	}
	// Cancel of a live task (parked: its runner is never online).
	parked, err := c.CreateTask(ctx, api.CreateTask{Name: "client parked", AgentID: "agent-client", RunnerID: "nobody-serves-this"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.CancelTask(ctx, parked.ID, client.CancelOptions{}); err != nil || r.CancelledBy != "dev-admin" {
		t.Fatalf("cancel: %+v %v", r, err)
	}
	if end, err := c.Wait(ctx, parked.ID); err != nil || end.Status != "cancelled" {
		t.Fatalf("wait after cancel: %+v %v", end, err)
	}
}

func sameEntries(a, b []api.LogEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Timestamp != b[i].Timestamp || a[i].Message != b[i].Message || a[i].Level != b[i].Level {
			return false
		}
	}
	return true
}

// droppingProxy forwards to the dev server, but the first create it
// forwards has its answer dropped: the server made the task, the client
// sees a broken connection.
func droppingProxy(t *testing.T, target string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var creates atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/tasks" && creates.Add(1) == 1 {
			body, _ := io.ReadAll(r.Body)
			req, _ := http.NewRequest(r.Method, target+r.URL.Path, bytes.NewReader(body))
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("forwarding: %v", err)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &creates
}

// TestClientCreateRetriedAfterDroppedConnection: the answer of a create is
// lost on the way back; the client retries with the same Idempotency-Key
// and bytes, and exactly one task exists.
func TestClientCreateRetriedAfterDroppedConnection(t *testing.T) {
	t.Parallel()
	ctx := waitCtx(t, 2*time.Minute)
	proxy, creates := droppingProxy(t, shared.api)
	c, err := client.New(proxy.URL, client.WithAPIKey(shared.key), client.WithRetry(client.Retry{Attempts: 3, Base: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	agent := "agent-dropped-" + time.Now().Format("150405.000")
	tk, err := c.CreateTask(ctx, api.CreateTask{Name: "dropped", AgentID: agent, RunnerID: "nobody-serves-this"})
	if err != nil {
		t.Fatalf("create through the dropping proxy: %v", err)
	}
	if creates.Load() != 2 {
		t.Fatalf("%d creates reached the proxy, want 2 (the dropped one and its retry)", creates.Load())
	}
	page, err := newClient(t, shared.api, shared.key).ListAgentTasks(ctx, agent, client.ListOptions{})
	if err != nil || len(page.Tasks) != 1 || page.Tasks[0].ID != tk.ID {
		t.Fatalf("tasks of %s: %+v %v (want only %s)", agent, page, err, tk.ID)
	}
	_, _ = c.CancelTask(context.Background(), tk.ID, client.CancelOptions{})
}
