package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// listCase is a filter of the list matrix.
type listCase struct {
	name string
	q    store.TaskQuery // Org, Sort, Descending, Limit and Offset are set by the test
}

// listFilters are the filter combinations the suite pages through.
func listFilters() []listCase {
	return []listCase{
		{"all", store.TaskQuery{}},
		{"status", store.TaskQuery{Status: []task.Status{task.StatusRunning}}},
		{"statuses", store.TaskQuery{Status: []task.Status{task.StatusPending, task.StatusFailed, task.StatusPending}}},
		{"agent", store.TaskQuery{AgentID: "agent-3"}},
		{"runner", store.TaskQuery{RunnerID: "runner-1"}},
		{"agent+status", store.TaskQuery{AgentID: "agent-1", Status: []task.Status{task.StatusCompleted}}},
		{"all filters", store.TaskQuery{AgentID: "agent-2", RunnerID: "runner-2",
			Status: []task.Status{task.StatusRunning, task.StatusCancelled, task.StatusCompleted}}},
		{"no match", store.TaskQuery{AgentID: "agent-none"}},
		{"unknown status", store.TaskQuery{Status: []task.Status{"bogus"}}},
	}
}

// listSorts are the sort orders the suite pages through.
var listSorts = []store.SortField{"", store.SortCreatedAt, store.SortUpdatedAt, store.SortStatus}

// pageAll pages through q (q.Limit per page) and checks each page against
// want (the expected IDs in order): every task exactly once, in order, and
// the total on every page. It returns the number of pages read.
func pageAll(t testing.TB, s store.Store, q store.TaskQuery, want []string) int {
	t.Helper()
	var got []string
	pages := 0
	for q.Offset = 0; ; q.Offset += q.Limit {
		page, total, err := s.ListTasks(t.Context(), q)
		if err != nil {
			t.Fatalf("ListTasks(%+v): %v", q, err)
		}
		pages++
		if total != len(want) {
			t.Fatalf("ListTasks(%+v): total %d, want %d", q, total, len(want))
		}
		end := min(q.Offset+q.Limit, len(want))
		if q.Offset >= len(want) {
			end = q.Offset
		}
		if len(page) != end-q.Offset {
			t.Fatalf("ListTasks(%+v): %d tasks, want %d", q, len(page), end-q.Offset)
		}
		for i, tk := range page {
			if tk.ID != want[q.Offset+i] {
				t.Fatalf("ListTasks(%+v): task %d (position %d) is %s, want %s",
					q, i, q.Offset+i, tk.ID, want[q.Offset+i])
			}
		}
		for _, tk := range page {
			got = append(got, tk.ID)
		}
		if len(page) < q.Limit {
			break
		}
	}
	seen := make(map[string]bool, len(got))
	for _, id := range got {
		if seen[id] {
			t.Fatalf("ListTasks(%+v): %s listed twice", q, id)
		}
		seen[id] = true
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListTasks(%+v): pages hold %d tasks, want %d", q, len(got), len(want))
	}
	return pages
}

func (h *harness) testListValidation(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	mustCreate(t, s, pendingTask(h.name("task"), org, baseTime))
	for _, q := range []store.TaskQuery{
		{Org: org, Limit: 0},
		{Org: org, Limit: -1},
		{Org: org, Limit: 10, Sort: "name"},
		{Org: org, Limit: 10, Sort: "created_at; DROP TABLE tasks"},
	} {
		if _, _, err := s.ListTasks(t.Context(), q); err == nil {
			t.Errorf("ListTasks(%+v) succeeded, want an error", q)
		}
	}
	if _, total, err := s.ListTasks(t.Context(), store.TaskQuery{Org: org, Limit: 10}); err != nil || total != 1 {
		t.Errorf("after invalid queries: total %d, error %v; want 1, nil", total, err)
	}
}

func (h *harness) testListOrgIsolation(t *testing.T) {
	s := h.open(t)
	a, b := h.name("org"), h.name("org")
	ta, tb := GenTasks(a, 30, baseTime), GenTasks(b, 20, baseTime)
	SeedTasks(t, s, ta)
	SeedTasks(t, s, tb)
	for _, c := range []struct {
		org  string
		want []store.Task
	}{{a, ta}, {b, tb}, {h.name("org"), nil}} {
		q := store.TaskQuery{Org: c.org, Limit: 1000}
		pageAll(t, s, q, Expect(c.want, q))
	}
}

func (h *harness) testListMatrix(t *testing.T) {
	s := h.open(t)
	org, other := h.name("org"), h.name("org")
	tasks := GenTasks(org, 150, baseTime)
	// A second org with the same agents, runners and statuses must never show.
	SeedTasks(t, s, append(GenTasks(other, 40, baseTime), tasks...))

	for _, f := range listFilters() {
		for _, sort := range listSorts {
			for _, desc := range []bool{false, true} {
				for _, limit := range []int{7, 1000} {
					q := f.q
					q.Org, q.Sort, q.Descending, q.Limit = org, sort, desc, limit
					want := Expect(tasks, q)
					name := fmt.Sprintf("%s/%s/desc=%v/limit=%d", f.name, sortName(sort), desc, limit)
					t.Run(name, func(t *testing.T) { pageAll(t, s, q, want) })
				}
			}
		}
	}
	// One page at a time through a tie-heavy order.
	q := store.TaskQuery{Org: org, Sort: store.SortStatus, Limit: 1}
	pageAll(t, s, q, Expect(tasks, q))
}

// sortName names a sort field in subtest names.
func sortName(f store.SortField) string {
	if f == "" {
		return "default"
	}
	return string(f)
}

func (h *harness) testListPastEnd(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	tasks := GenTasks(org, 25, baseTime)
	SeedTasks(t, s, tasks)
	for _, c := range []struct{ limit, offset, n int }{
		{10, 0, 10}, {10, 20, 5}, {10, 25, 0}, {10, 1000, 0}, {25, 0, 25}, {5, 25, 0},
	} {
		page, total, err := s.ListTasks(t.Context(), store.TaskQuery{Org: org, Limit: c.limit, Offset: c.offset})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != c.n || total != 25 {
			t.Errorf("limit %d offset %d: %d tasks, total %d; want %d, 25", c.limit, c.offset, len(page), total, c.n)
		}
	}
	page, total, err := s.ListTasks(t.Context(), store.TaskQuery{Org: h.name("org"), Limit: 10, Offset: 10})
	if err != nil || len(page) != 0 || total != 0 {
		t.Errorf("empty org past the end: %d tasks, total %d, error %v", len(page), total, err)
	}
}

func (h *harness) testListFullRows(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	tasks := GenTasks(org, 40, baseTime.Add(-time.Hour))
	SeedTasks(t, s, tasks)
	byID := map[string]store.Task{}
	for _, tk := range tasks {
		byID[tk.ID] = tk
	}
	page, _, err := s.ListTasks(t.Context(), store.TaskQuery{Org: org, Limit: 100, Sort: store.SortUpdatedAt, Descending: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != len(tasks) {
		t.Fatalf("listed %d tasks, want %d", len(page), len(tasks))
	}
	for _, got := range page {
		if d := diffTask(got, byID[got.ID]); len(d) > 0 {
			t.Errorf("listed task %s differs: %s", got.ID, strings.Join(d, "; "))
		}
	}
}
