package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// testTaskCounts checks TaskCounts sums over orgs and follows transitions.
// The database may hold other tests' tasks, so it looks only at runners of
// its own namespace.
func (h *harness) testTaskCounts(t *testing.T) {
	s := h.open(t)
	r1, r2 := h.name("runner"), h.name("runner")
	var tasks []store.Task
	for i, org := range []string{h.name("org"), h.name("org")} {
		for j, tk := range GenTasks(org, 40, baseTime) {
			tk.RunnerID = r1
			if (i+j)%3 == 0 {
				tk.RunnerID = r2
			}
			tasks = append(tasks, tk)
		}
	}
	SeedTasks(t, s, tasks)
	next := task.StatusCompleted
	if tasks[0].Status == next {
		next = task.StatusFailed
	}
	if err := s.ApplyTransition(t.Context(), store.Transition{ID: tasks[0].ID, Status: next, UpdatedAt: tasks[0].UpdatedAt.Add(1)}); err != nil {
		t.Fatal(err)
	}
	tasks[0].Status = next

	want := map[[2]string]int{}
	for _, tk := range tasks {
		want[[2]string{tk.RunnerID, string(tk.Status)}]++
	}
	got, err := s.TaskCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gotMap := map[[2]string]int{}
	for i, st := range got {
		if st.Tasks <= 0 {
			t.Fatalf("a zero count is listed: %+v", st)
		}
		if i > 0 && (got[i-1].RunnerID > st.RunnerID || got[i-1].RunnerID == st.RunnerID && got[i-1].Status >= st.Status) {
			t.Fatalf("not ordered by runner then status: %+v then %+v", got[i-1], st)
		}
		if st.RunnerID == r1 || st.RunnerID == r2 {
			gotMap[[2]string{st.RunnerID, string(st.Status)}] += st.Tasks
		}
	}
	if len(gotMap) != len(want) {
		t.Fatalf("got %v, want %v", gotMap, want)
	}
	for k, n := range want {
		if gotMap[k] != n {
			t.Fatalf("runner %s status %s: got %d, want %d", k[0], k[1], gotMap[k], n)
		}
	}
}

// BenchTaskCounts measures TaskCounts over n generated tasks of one org
// (what a /metrics scrape reads from the store).
func BenchTaskCounts(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	start := time.Now()
	SeedTasks(b, s, GenTasks("bench-counts", n, baseTime))
	b.Logf("seeded %d tasks in %v", n, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.TaskCounts(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
