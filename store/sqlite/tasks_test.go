package sqlite

import (
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
)

// checkCounts fails t if task_counts differs from counting tasks.
func checkCounts(t testing.TB, s *Store) {
	t.Helper()
	if n := countMismatches(t, s); n != 0 {
		t.Errorf("task_counts differs from the tasks table in %d rows", n)
	}
}

// countMismatches returns how many rows of task_counts and of a count of the
// tasks table differ.
func countMismatches(t testing.TB, s *Store) int {
	t.Helper()
	const (
		counted = `SELECT org, status, agent_id, runner_id, count(*) FROM tasks GROUP BY 1, 2, 3, 4`
		kept    = `SELECT org, status, agent_id, runner_id, n FROM task_counts`
	)
	var n int
	err := s.r.QueryRow(`SELECT count(*) FROM (
		SELECT * FROM (` + kept + ` EXCEPT ` + counted + `)
		UNION ALL
		SELECT * FROM (` + counted + ` EXCEPT ` + kept + `))`).Scan(&n)
	if err != nil {
		t.Fatalf("check task_counts: %v", err)
	}
	return n
}

func TestTaskCountsTriggers(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	base := time.Unix(1700000000, 0)
	tasks := storetest.GenTasks("o", 300, base)
	if err := s.CreateTasks(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTasks(ctx, tasks[:50]); err != nil { // skipped: no count change
		t.Fatal(err)
	}
	checkCounts(t, s)
	for i, tk := range tasks[:100] {
		st := storetest.GenStatuses[i%len(storetest.GenStatuses)]
		if err := s.ApplyTransition(ctx, store.Transition{ID: tk.ID, Status: st, UpdatedAt: base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	checkCounts(t, s)
	// Rows are never deleted through the Store, but the counts follow a
	// manual cleanup too, and no zero rows are left behind.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM tasks WHERE agent_id = 'agent-3' OR status = 'failed'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE tasks SET runner_id = 'moved' WHERE runner_id = 'runner-1'`); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s)
	var zero int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM task_counts WHERE n <= 0`).Scan(&zero); err != nil || zero != 0 {
		t.Errorf("%d task_counts rows at zero (error %v)", zero, err)
	}

	// The check itself notices a count off by one, and a missing row.
	if _, err := s.w.ExecContext(ctx, `UPDATE task_counts SET n = n + 1 WHERE agent_id = 'agent-1' AND status = 'running' AND runner_id = 'runner-0'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM task_counts WHERE agent_id = 'agent-2' AND status = 'pending' AND runner_id = 'runner-2'`); err != nil {
		t.Fatal(err)
	}
	if n := countMismatches(t, s); n != 3 {
		t.Errorf("after corrupting two counts: %d mismatches, want 3", n)
	}
}

func TestCreateTasksBatch(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	tasks := storetest.GenTasks("o", 50, time.Unix(1700000000, 0))
	if err := s.CreateTasks(ctx, tasks[:30]); err != nil {
		t.Fatal(err)
	}
	// Overlapping batch: existing IDs are skipped.
	if err := s.CreateTasks(ctx, tasks[20:]); err != nil {
		t.Fatal(err)
	}
	// An invalid task rolls the whole batch back.
	bad := append(storetest.GenTasks("p", 3, time.Unix(0, 0)), store.Task{ID: "no-org"})
	if err := s.CreateTasks(ctx, bad); err == nil {
		t.Error("CreateTasks with an invalid task succeeded")
	}
	for org, want := range map[string]int{"o": 50, "p": 0} {
		_, total, err := s.ListTasks(ctx, store.TaskQuery{Org: org, Limit: 1})
		if err != nil || total != want {
			t.Errorf("org %s: total %d (error %v), want %d", org, total, err, want)
		}
	}
	if err := s.CreateTasks(ctx, nil); err != nil {
		t.Errorf("CreateTasks(nil) = %v", err)
	}
}
