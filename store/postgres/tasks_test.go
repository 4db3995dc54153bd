package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

// checkCounts fails t if task_counts differs from counting tasks.
func checkCounts(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	if n := countMismatches(t, conn); n != 0 {
		t.Errorf("task_counts differs from the tasks table in %d rows", n)
	}
}

// countMismatches returns how many rows of task_counts and of a count of the
// tasks table differ.
func countMismatches(t testing.TB, conn *pgx.Conn) int {
	t.Helper()
	const (
		counted = `SELECT org, status, agent_id, runner_id, count(*) FROM tasks GROUP BY 1, 2, 3, 4`
		kept    = `SELECT org, status, agent_id, runner_id, n FROM task_counts`
	)
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(*) FROM (
		(`+kept+` EXCEPT `+counted+`)
		UNION ALL
		(`+counted+` EXCEPT `+kept+`)) AS d`).Scan(&n)
	if err != nil {
		t.Fatalf("check task_counts: %v", err)
	}
	return n
}

func TestTaskCountsTriggers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	base := time.Unix(1700000000, 0)
	tasks := storetest.GenTasks("o", 300, base)
	if err := s.CreateTasks(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTasks(ctx, tasks[:50]); err != nil { // skipped: no count change
		t.Fatal(err)
	}
	checkCounts(t, conn)
	for i, tk := range tasks[:100] {
		st := storetest.GenStatuses[i%len(storetest.GenStatuses)]
		if err := s.ApplyTransition(ctx, store.Transition{ID: tk.ID, Status: st, UpdatedAt: base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	checkCounts(t, conn)
	// Rows are never deleted through the Store, but the counts follow a
	// manual cleanup too, and no zero rows are left behind.
	if _, err := conn.Exec(ctx, `DELETE FROM tasks WHERE agent_id = 'agent-3' OR status = 'failed'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE tasks SET runner_id = 'moved' WHERE runner_id = 'runner-1'`); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, conn)
	var zero int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM task_counts WHERE n <= 0`).Scan(&zero); err != nil || zero != 0 {
		t.Errorf("%d task_counts rows at zero (error %v)", zero, err)
	}

	// The check itself notices a count off by one, and a missing row.
	if _, err := conn.Exec(ctx, `UPDATE task_counts SET n = n + 1 WHERE agent_id = 'agent-1' AND status = 'running' AND runner_id = 'runner-0'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM task_counts WHERE agent_id = 'agent-2' AND status = 'pending' AND runner_id = 'runner-2'`); err != nil {
		t.Fatal(err)
	}
	if n := countMismatches(t, conn); n != 3 {
		t.Errorf("after corrupting two counts: %d mismatches, want 3", n)
	}
}

// TestConcurrentCounts changes the statuses of shared tasks and bulk-inserts
// overlapping batches from many sessions at once: the count rows they share
// must neither deadlock nor drift.
func TestConcurrentCounts(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	base := time.Unix(1700000000, 0)
	tasks := storetest.GenTasks("o", 400, base)
	if err := s.CreateTasks(ctx, tasks[:200]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Overlapping batches, in different orders.
			batch := append([]store.Task{}, tasks[150+w*25:min(400, 250+w*25)]...)
			if w%2 == 1 {
				for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
					batch[i], batch[j] = batch[j], batch[i]
				}
			}
			if err := s.CreateTasks(ctx, batch); err != nil {
				errs <- err
				return
			}
			for k := range 60 {
				tk := tasks[(w*37+k*11)%200]
				st := []task.Status{task.StatusRunning, task.StatusPending, task.StatusCancelling}[(w+k)%3]
				if err := s.ApplyTransition(ctx, store.Transition{ID: tk.ID, Status: st,
					UpdatedAt: base.Add(time.Duration(k+1) * time.Minute)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkCounts(t, conn)
	_, total, err := s.ListTasks(ctx, store.TaskQuery{Org: "o", Limit: 1})
	if err != nil || total != 400 {
		t.Errorf("total %d (error %v), want 400", total, err)
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
	// A repeated ID inside a batch: the first is stored.
	first, second := store.Task{ID: "dup", Org: "q", Name: "first"}, store.Task{ID: "dup", Org: "q", Name: "second"}
	if err := s.CreateTasks(ctx, []store.Task{first, second}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTask(ctx, "q", "dup"); err != nil || got.Name != "first" {
		t.Errorf("repeated ID: stored %q (error %v), want the first", got.Name, err)
	}
	for org, want := range map[string]int{"o": 50, "p": 0, "q": 1} {
		_, total, err := s.ListTasks(ctx, store.TaskQuery{Org: org, Limit: 1})
		if err != nil || total != want {
			t.Errorf("org %s: total %d (error %v), want %d", org, total, err, want)
		}
	}
	if err := s.CreateTasks(ctx, nil); err != nil {
		t.Errorf("CreateTasks(nil) = %v", err)
	}
}

// TestCollation checks lists order text bytewise on a database whose default
// collation does not (pgtest's clusters default to ICU en-US where they can).
func TestCollation(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	var linguistic bool
	if err := conn.QueryRow(ctx, `SELECT 'a' < 'B'`).Scan(&linguistic); err != nil {
		t.Fatal(err)
	}
	t.Logf("database default collation orders 'a' before 'B': %v", linguistic)
	ids := []string{"B", "a", "_x", "a-b", "ab", "A", "é", "z"}
	for _, id := range ids {
		if err := s.CreateTask(ctx, store.Task{ID: id, Org: "o", Status: task.StatusPending, CreatedAt: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	page, _, err := s.ListTasks(ctx, store.TaskQuery{Org: "o", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range page {
		got = append(got, tk.ID)
	}
	if want := "[A B _x a a-b ab z é]"; fmt.Sprint(got) != want {
		t.Errorf("IDs in order %v, want bytewise %s", got, want)
	}
}

// TestListShapes pages through lists with each of ListTasks' two statement
// shapes (rows straight from the index walk, or IDs first then rows), which
// the offset chooses between.
func TestListShapes(t *testing.T) {
	s := openTest(t)
	org := "o"
	tasks := storetest.GenTasks(org, 300, time.Unix(1700000000, 0))
	if err := s.CreateTasks(t.Context(), append(storetest.GenTasks("other", 50, time.Unix(1700000000, 0)), tasks...)); err != nil {
		t.Fatal(err)
	}
	defer func(f int) { deferredJoinFactor = f }(deferredJoinFactor)
	for _, factor := range []int{1 << 30, 0} {
		deferredJoinFactor = factor
		for _, q := range []store.TaskQuery{
			{Descending: true},
			{Sort: store.SortStatus},
			{Sort: store.SortUpdatedAt, Status: []task.Status{task.StatusPending, task.StatusFailed}},
			{AgentID: "agent-3", Descending: true},
			{AgentID: "agent-none"},
		} {
			q.Org, q.Limit = org, 11
			want := storetest.Expect(tasks, q)
			var got []string
			for q.Offset = 0; q.Offset <= len(want)+q.Limit; q.Offset += q.Limit {
				page, total, err := s.ListTasks(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				if total != len(want) {
					t.Fatalf("factor %d, %+v: total %d, want %d", factor, q, total, len(want))
				}
				for _, tk := range page {
					got = append(got, tk.ID)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("factor %d, %+v: pages hold %d tasks, not the %d expected in order", factor, q, len(got), len(want))
			}
		}
	}
}
