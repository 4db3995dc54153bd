package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TestStatusReusesRecentQuery: polling a running task's status queries the
// workflow once per StateTTL; a finished task never waits for the cache.
func TestStatusReusesRecentQuery(t *testing.T) {
	ts := newTestServer(t, true, func(o *Options) { o.StateTTL = 300 * time.Millisecond })
	ts.addTask(t, store.Task{ID: "task-poll", Org: "org-a", Status: task.StatusRunning})
	ts.fake.state = &task.State{Status: task.StatusRunning, Progress: 40, CurrentStep: task.StepApplying, UpdatedAt: time.Now()}
	queries := func() int {
		ts.fake.mu.Lock()
		defer ts.fake.mu.Unlock()
		return ts.fake.queries
	}
	status := func() map[string]any {
		w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-poll/status", key: "k-viewer-a"})
		var v map[string]any
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &v) != nil {
			t.Fatalf("status: %d %s", w.Code, w.Body)
		}
		return v
	}
	start := time.Now()
	for range 5 {
		if v := status(); v["progress"] != float64(40) {
			t.Fatalf("status %v, want the workflow's progress 40", v)
		}
	}
	if n := queries(); n != 1 && time.Since(start) < 300*time.Millisecond {
		t.Fatalf("%d queries for 5 polls within the TTL, want 1", n)
	}
	time.Sleep(350 * time.Millisecond)
	ts.fake.mu.Lock()
	ts.fake.state = &task.State{Status: task.StatusRunning, Progress: 60, CurrentStep: task.StepApplying, UpdatedAt: time.Now()}
	ts.fake.mu.Unlock()
	before := queries()
	if v := status(); v["progress"] != float64(60) || queries() != before+1 {
		t.Fatalf("after the TTL: %v with %d new queries, want progress 60 from one new query", v, queries()-before)
	}
	// Finished in the store: answered at once, cache or not.
	if err := ts.store.ApplyTransition(t.Context(), store.Transition{ID: "task-poll", Status: task.StatusCompleted, Progress: 100, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if v := status(); v["status"] != "completed" || v["progress"] != float64(100) {
		t.Fatalf("finished task: %v", v)
	}
}
