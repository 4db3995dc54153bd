package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

// openTest opens a store on a new file in tb's temporary directory.
func openTest(tb testing.TB) *Store {
	tb.Helper()
	return openPath(tb, filepath.Join(tb.TempDir(), "store.db"))
}

// openPath opens a store at path and closes it when tb ends.
func openPath(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTest(t)
		t.Cleanup(func() { checkCounts(t, s) }) // runs before Close
		return s
	})
}

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

func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 tasks; skipped with -short")
	}
	storetest.RunLarge(t, func(t *testing.T) store.Store { return openTest(t) }, 100_000)
}

// migrationRow is a row of schema_migrations.
type migrationRow struct {
	version   int
	name      string
	appliedAt int64
}

func migrationRows(t *testing.T, s *Store) []migrationRow {
	t.Helper()
	rows, err := s.r.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.version, &r.name, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReopenKeepsDataAndMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nested name with spaces & ?marks.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	first := migrationRows(t, s)
	if len(first) != len(embedded) || len(first) == 0 {
		t.Fatalf("%d migrations recorded, want %d", len(first), len(embedded))
	}
	for i, m := range embedded {
		if first[i].version != m.Version || first[i].name != m.Name {
			t.Errorf("recorded migration %d = %+v, want version %d name %s", i, first[i], m.Version, m.Name)
		}
	}

	created := time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.UTC)
	tk := store.Task{ID: "t1", Org: "o", Name: "keep me", Status: task.StatusRunning, Progress: 5,
		Metadata: map[string]any{"k": "v"}, CreatedAt: created, UpdatedAt: created}
	if err := s.CreateTask(ctx, tk); err != nil {
		t.Fatal(err)
	}
	entries := storetest.GenLogs("t1", "task", 1, 30, created)
	if err := s.AppendLogs(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		s := openPath(t, path)
		if got := migrationRows(t, s); fmt.Sprint(got) != fmt.Sprint(first) {
			t.Errorf("reopen %d: migrations %v, want unchanged %v", round, got, first)
		}
		got, err := s.GetTask(ctx, "o", "t1")
		if err != nil {
			t.Fatalf("reopen %d: %v", round, err)
		}
		if got.Name != "keep me" || got.Progress != 5 || !got.CreatedAt.Equal(created.Truncate(time.Microsecond)) ||
			got.Metadata["k"] != "v" {
			t.Errorf("reopen %d: task = %+v", round, got)
		}
		logs, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t1", Limit: 100})
		if err != nil || len(logs) != len(entries)+2*round {
			t.Fatalf("reopen %d: %d log entries (error %v), want %d", round, len(logs), err, len(entries)+2*round)
		}
		// Appending the same lines after a restart still stores nothing new,
		// and new lines get IDs after the old ones.
		if err := s.AppendLogs(ctx, entries); err != nil {
			t.Fatal(err)
		}
		more := storetest.GenLogs("t1", fmt.Sprintf("round%d", round), 1, 2, created)
		if err := s.AppendLogs(ctx, more); err != nil {
			t.Fatal(err)
		}
		after, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t1", AfterID: logs[len(entries)-1].ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != 2*(round+1) {
			t.Errorf("reopen %d: %d entries after the old ones, want %d", round, len(after), 2*(round+1))
		}
	}
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	db := s.w

	v1 := fstest.MapFS{
		"m/0001_one.sql":  {Data: []byte(`CREATE TABLE m_one (a INTEGER); INSERT INTO m_one VALUES (1);`)},
		"m/README.md":     {Data: []byte(`not a migration`)},
		"m/0002_two.sql":  {Data: []byte(`ALTER TABLE m_one ADD COLUMN b TEXT;`)},
		"m/0010_ten.sql":  {Data: []byte(`CREATE INDEX m_one_b ON m_one (b);`)},
		"m/0003_three.sq": {Data: []byte(`ignored: wrong extension`)},
	}
	// The test store already applied the embedded migrations into the same
	// schema_migrations table, so use versions far above them.
	renumber := func(fsys fstest.MapFS) fstest.MapFS {
		out := fstest.MapFS{}
		for name, f := range fsys {
			dir, base := filepath.Split(name)
			if strings.HasSuffix(base, ".sql") {
				base = "9" + base
			}
			out[dir+base] = f
		}
		return out
	}
	v1 = renumber(v1)
	applied, err := migrate(ctx, db, v1, "m")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied) != "[90001 90002 90010]" {
		t.Errorf("applied %v, want [90001 90002 90010] in order", applied)
	}
	applied, err = migrate(ctx, db, v1, "m")
	if err != nil || len(applied) != 0 {
		t.Errorf("second run applied %v (error %v), want nothing", applied, err)
	}

	// A new migration is applied alone; a failing one leaves neither its
	// changes nor a record, and stops the ones after it.
	v2 := fstest.MapFS{}
	for k, v := range v1 {
		v2[k] = v
	}
	v2["m/90011_eleven.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE m_eleven (x INTEGER);`)}
	v2["m/90012_broken.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE m_broken (x INTEGER); SELECT * FROM no_such_table;`)}
	v2["m/90013_after.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE m_after (x INTEGER);`)}
	applied, err = migrate(ctx, db, v2, "m")
	if err == nil || !strings.Contains(err.Error(), "90012_broken") {
		t.Fatalf("migrate with a broken migration: error %v", err)
	}
	if fmt.Sprint(applied) != "[90011]" {
		t.Errorf("applied %v before the failure, want [90011]", applied)
	}
	for table, want := range map[string]int{"m_one": 1, "m_eleven": 1, "m_broken": 0, "m_after": 0} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("table %s exists %d times, want %d", table, n, want)
		}
	}
	var recorded int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version >= 90000`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != 4 {
		t.Errorf("%d test migrations recorded, want 4", recorded)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"no version":   {"m/one.sql": {}},
		"bad version":  {"m/x1_one.sql": {}},
		"dup versions": {"m/1_a.sql": {}, "m/0001_b.sql": {}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
}

func TestPragmas(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	for _, c := range []struct {
		pool string
		conn func() (*sql.Conn, error)
	}{
		{"write", func() (*sql.Conn, error) { return s.w.Conn(ctx) }},
		{"read", func() (*sql.Conn, error) { return s.r.Conn(ctx) }},
	} {
		// Hold several connections at once so the pool opens new ones.
		var conns []*sql.Conn
		n := 1
		if c.pool == "read" {
			n = 3
		}
		for range n {
			conn, err := c.conn()
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
		}
		for i, conn := range conns {
			for pragma, want := range map[string]string{
				"journal_mode": "wal",
				"busy_timeout": fmt.Sprint(BusyTimeoutMillis),
				"synchronous":  "1", // NORMAL
				"foreign_keys": "1",
			} {
				var got string
				if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("%s pool connection %d: PRAGMA %s: %v", c.pool, i, pragma, err)
				}
				if got != want {
					t.Errorf("%s pool connection %d: %s = %s, want %s", c.pool, i, pragma, got, want)
				}
			}
		}
		for _, conn := range conns {
			conn.Close()
		}
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO logs (task_id, stream, seq, ts, level, message) VALUES ('t', 's', 1, 0, 'info', '')`); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

func TestOpenRejectsNonFiles(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// TestTwoStoresOneFile writes to one file from two Stores at once, as two
// processes would: busy_timeout and BEGIN IMMEDIATE must make them wait for
// each other instead of failing.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, b := openPath(t, path), openPath(t, path)
	ctx := t.Context()
	if err := a.CreateTask(ctx, store.Task{ID: "t", Org: "o", CreatedAt: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				batch := storetest.GenLogs("t", fmt.Sprintf("w%d", i), int64(k*20+1), 20, time.Unix(0, 0))
				if err := s.AppendLogs(ctx, batch); err != nil {
					errs <- err
					return
				}
				if err := s.ApplyTransition(ctx, store.Transition{ID: "t", Status: task.StatusRunning,
					Progress: k, UpdatedAt: time.Unix(int64(k), 0)}); err != nil {
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
	logs, err := b.ListLogs(ctx, store.LogQuery{TaskID: "t", Limit: 10000})
	if err != nil || len(logs) != 4*50*20 {
		t.Errorf("%d entries (error %v), want %d", len(logs), err, 4*50*20)
	}
}

// queryPlan returns the EXPLAIN QUERY PLAN lines of a statement.
func queryPlan(t *testing.T, s *Store, query string, args []any) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestQueryPlans checks the statements ListTasks and ListLogs build: a page
// walks an index in order to its rows (no sort, no table read for rows the
// offset skips) for the filter and sort pairs the API serves most, every
// filter combination reads the page's rowids from a covering index, and totals
// come from task_counts.
func TestQueryPlans(t *testing.T) {
	s := openTest(t)
	running := []task.Status{task.StatusRunning}
	for _, c := range []struct {
		name   string
		q      store.TaskQuery
		sorted bool // may sort a filtered subset
	}{
		{"created", store.TaskQuery{}, false},
		{"created asc", store.TaskQuery{Descending: false}, false},
		{"updated", store.TaskQuery{Sort: store.SortUpdatedAt}, false},
		{"status", store.TaskQuery{Sort: store.SortStatus}, false},
		{"status filter/created", store.TaskQuery{Status: running}, false},
		{"status filter/updated", store.TaskQuery{Status: running, Sort: store.SortUpdatedAt}, false},
		{"status filter/status", store.TaskQuery{Status: running, Sort: store.SortStatus}, false},
		{"agent/created", store.TaskQuery{AgentID: "a"}, false},
		{"runner/created", store.TaskQuery{RunnerID: "r"}, false},
		{"statuses/created", store.TaskQuery{Status: []task.Status{task.StatusPending, task.StatusFailed}}, true},
		{"agent/updated", store.TaskQuery{AgentID: "a", Sort: store.SortUpdatedAt}, true},
		{"agent/status", store.TaskQuery{AgentID: "a", Sort: store.SortStatus}, true},
		{"runner/updated", store.TaskQuery{RunnerID: "r", Sort: store.SortUpdatedAt}, true},
		{"all filters/status", store.TaskQuery{Status: running, AgentID: "a", RunnerID: "r", Sort: store.SortStatus}, true},
	} {
		for _, desc := range []bool{false, true} {
			q := c.q
			q.Org, q.Limit, q.Offset, q.Descending = "o", 50, 100, desc
			page, count, args, err := listTasksSQL(q)
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(queryPlan(t, s, page, append(args, q.Limit, q.Offset)), "; ")
			t.Logf("%s desc=%v: %s", c.name, desc, plan)
			if !strings.Contains(plan, "SEARCH tasks USING COVERING INDEX") {
				t.Errorf("%s desc=%v: page rowids not read from a covering index: %s", c.name, desc, plan)
			}
			if !c.sorted && strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("%s desc=%v: page sorts: %s", c.name, desc, plan)
			}
			if !strings.Contains(plan, "SEARCH t USING INTEGER PRIMARY KEY") {
				t.Errorf("%s desc=%v: page rows not read by rowid: %s", c.name, desc, plan)
			}
			if cp := strings.Join(queryPlan(t, s, count, args), "; "); !strings.Contains(cp, "SEARCH task_counts USING PRIMARY KEY (org=?") {
				t.Errorf("%s: count does not read task_counts by org: %s", c.name, cp)
			}
		}
	}

	since := time.Unix(0, 0)
	for _, c := range []struct {
		name  string
		q     store.LogQuery
		index string
	}{
		{"all", store.LogQuery{}, "logs_task "},
		{"one level", store.LogQuery{Levels: []store.Level{store.LevelError}}, "logs_task_level "},
		{"since", store.LogQuery{Since: &since}, "logs_task "},
	} {
		q := c.q
		q.TaskID, q.Limit = "t", 100
		query, args, err := listLogsSQL(q)
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(queryPlan(t, s, query, args), "; ")
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan+" ", "INDEX "+c.index) {
			t.Errorf("logs %s: plan %s, want %s without a sort", c.name, plan, c.index)
		}
	}
	// Several levels: each level walks the level index; only the merge of
	// at most levels x limit rows sorts.
	query, args, err := listLogsSQL(store.LogQuery{TaskID: "t", Limit: 100,
		Levels: []store.Level{store.LevelWarn, store.LevelError}})
	if err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s, query, args)
	t.Logf("logs warn,error: %s", strings.Join(plan, "; "))
	n := 0
	for _, line := range plan {
		if strings.Contains(line, "INDEX logs_task_level ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("logs warn,error: plan %q, want the level index searched twice", plan)
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

func TestContextCancelled(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateTask(ctx, store.Task{ID: "x", Org: "o"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTask with a cancelled context: %v", err)
	}
	if _, _, err := s.ListTasks(ctx, store.TaskQuery{Org: "o", Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListTasks with a cancelled context: %v", err)
	}
	// The store still works afterwards.
	if err := s.CreateTask(t.Context(), store.Task{ID: "x", Org: "o"}); err != nil {
		t.Error(err)
	}
}

func storeOpener(b *testing.B) store.Store { return openTest(b) }

func BenchmarkListTasksPage100k(b *testing.B) {
	storetest.BenchListTasksPage(b, storeOpener(b), 100_000)
}

func BenchmarkGetTask(b *testing.B) {
	storetest.BenchGetTask(b, storeOpener(b), 10_000)
}

func BenchmarkListLogsByLevel100k(b *testing.B) {
	storetest.BenchListLogsByLevel(b, storeOpener(b), 100_000)
}

func BenchmarkStateOps(b *testing.B) {
	storetest.BenchStateOps(b, storeOpener(b))
}

func BenchmarkAppendLogs(b *testing.B) {
	storetest.BenchAppendLogs(b, storeOpener(b))
}

func BenchmarkTaskCounts100k(b *testing.B) {
	storetest.BenchTaskCounts(b, storeOpener(b), 100_000)
}

// TestListenAcrossProcesses: a second Store on the same file (another
// process, such as a runner sharing a server's store) is told about what the
// first writes, by its poll.
func TestListenAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	storetest.RunListenAcross(t, func(t *testing.T) (store.Store, store.Store) {
		return openPath(t, path), openPath(t, path)
	})
}
