package storetest

import (
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// RunLarge seeds n generated tasks in one org (plus a few in another) and
// pages through several filter and sort combinations 1000 tasks at a time,
// checking that no task is missing or repeated and that the order and the
// total are right. It logs the seeding time and the slowest page.
func RunLarge(t *testing.T, open func(t *testing.T) store.Store, n int) {
	s := open(t)
	h := &harness{prefix: randomPrefix()}
	org := h.name("org")
	tasks := GenTasks(org, n, baseTime)

	start := time.Now()
	SeedTasks(t, s, GenTasks(h.name("org"), 100, baseTime))
	SeedTasks(t, s, tasks)
	t.Logf("seeded %d tasks in %v", n, time.Since(start).Round(time.Millisecond))

	for _, c := range []struct {
		name string
		q    store.TaskQuery
	}{
		{"created desc", store.TaskQuery{Descending: true}},
		{"status desc", store.TaskQuery{Sort: store.SortStatus, Descending: true}},
		{"running by updated desc", store.TaskQuery{Status: []task.Status{task.StatusRunning},
			Sort: store.SortUpdatedAt, Descending: true}},
		{"pending+failed by created", store.TaskQuery{Status: []task.Status{task.StatusPending, task.StatusFailed}}},
		{"agent by updated desc", store.TaskQuery{AgentID: "agent-3", Sort: store.SortUpdatedAt, Descending: true}},
		{"runner+status by status", store.TaskQuery{RunnerID: "runner-1",
			Status: []task.Status{task.StatusCompleted, task.StatusCancelled}, Sort: store.SortStatus}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.Org, q.Limit = org, 1000
			want := Expect(tasks, q)
			start := time.Now()
			pages := pageAll(t, s, q, want)
			elapsed := time.Since(start)
			t.Logf("%d tasks in %d pages: %v (%v a page)", len(want), pages,
				elapsed.Round(time.Millisecond), (elapsed / time.Duration(pages)).Round(time.Microsecond))
		})
	}
}
