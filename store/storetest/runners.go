package storetest

import (
	"sort"
	"testing"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func (h *harness) testRunnerStats(t *testing.T) {
	s := h.open(t)
	org, other := h.name("org"), h.name("org")
	tasks := GenTasks(org, 120, baseTime)
	SeedTasks(t, s, append(GenTasks(other, 30, baseTime), tasks...))
	// One task moves on: the counts follow transitions.
	moved := tasks[0]
	next := task.StatusCompleted
	if moved.Status == next {
		next = task.StatusFailed
	}
	if err := s.ApplyTransition(t.Context(), store.Transition{ID: moved.ID, Status: next, UpdatedAt: moved.UpdatedAt.Add(1)}); err != nil {
		t.Fatal(err)
	}
	tasks[0].Status = next

	want := map[[2]string]int{}
	for _, tk := range tasks {
		want[[2]string{tk.RunnerID, string(tk.Status)}]++
	}
	got, err := s.RunnerStats(t.Context(), org)
	if err != nil {
		t.Fatal(err)
	}
	gotMap := map[[2]string]int{}
	for _, st := range got {
		if st.Tasks <= 0 {
			t.Fatalf("a zero count is listed: %+v", st)
		}
		gotMap[[2]string{st.RunnerID, string(st.Status)}] += st.Tasks
	}
	if len(gotMap) != len(want) {
		t.Fatalf("got %v, want %v", gotMap, want)
	}
	for k, n := range want {
		if gotMap[k] != n {
			t.Fatalf("runner %s status %s: got %d, want %d", k[0], k[1], gotMap[k], n)
		}
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].RunnerID < got[j].RunnerID }) {
		t.Fatalf("not ordered by runner: %+v", got)
	}
	if none, err := s.RunnerStats(t.Context(), h.name("org")); err != nil || len(none) != 0 {
		t.Fatalf("empty org: %v %v", none, err)
	}
}
