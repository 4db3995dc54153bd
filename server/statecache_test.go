package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TestStatusReusesRecentQuery: polling a running task's status queries the
// workflow once per StateTTL, on the server's clock; a finished task never
// waits for the cache.
func TestStatusReusesRecentQuery(t *testing.T) {
	const ttl = 300 * time.Millisecond
	clock := &testClock{}
	start := time.Now()
	clock.set(start)
	ts := newTestServer(t, true, func(o *Options) { o.StateTTL = ttl; clock.option(o) })
	ts.addTask(t, store.Task{ID: "task-poll", Org: "org-a", Status: task.StatusRunning})
	setProgress := func(p int) {
		ts.fake.mu.Lock()
		defer ts.fake.mu.Unlock()
		ts.fake.state = &task.State{Status: task.StatusRunning, Progress: p, CurrentStep: task.StepApplying, UpdatedAt: start}
	}
	queries := func() int {
		ts.fake.mu.Lock()
		defer ts.fake.mu.Unlock()
		return ts.fake.queries
	}
	progress := func() any {
		w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-poll/status", key: "k-viewer-a"})
		var v map[string]any
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &v) != nil {
			t.Fatalf("status: %d %s", w.Code, w.Body)
		}
		return v["progress"]
	}
	setProgress(40)
	for range 5 {
		if p := progress(); p != float64(40) {
			t.Fatalf("progress %v, want the workflow's 40", p)
		}
	}
	if n := queries(); n != 1 {
		t.Fatalf("%d queries for 5 polls within the TTL, want 1", n)
	}
	// Just within the TTL the answer is the cached one, whatever the
	// workflow says now; at the TTL it is asked again, once.
	setProgress(60)
	clock.set(start.Add(ttl - time.Millisecond))
	if p, n := progress(), queries(); p != float64(40) || n != 1 {
		t.Fatalf("within the TTL: progress %v after %d queries, want the cached 40 after 1", p, n)
	}
	clock.set(start.Add(ttl))
	if p, n := progress(), queries(); p != float64(60) || n != 2 {
		t.Fatalf("at the TTL: progress %v after %d queries, want 60 from a second query", p, n)
	}
	// Finished in the store: answered at once, cache or not.
	if err := ts.store.ApplyTransition(t.Context(), store.Transition{ID: "task-poll", Status: task.StatusCompleted, Progress: 100, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-poll/status", key: "k-viewer-a"})
	var v map[string]any
	if json.Unmarshal(w.Body.Bytes(), &v) != nil || v["status"] != "completed" || v["progress"] != float64(100) {
		t.Fatalf("finished task: %d %s", w.Code, w.Body)
	}
}
