package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openDSN opens a store on dsn and closes it when tb ends.
func openDSN(tb testing.TB, dsn string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// openTest opens a store on a fresh database.
func openTest(tb testing.TB) *Store {
	tb.Helper()
	return openDSN(tb, pgtest.NewDatabase(tb))
}

// connect returns a plain connection to dsn, closed when tb ends.
func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStore(t *testing.T) {
	// One database for the whole suite (it namespaces its data), a store of
	// its own for every subtest: each Open finds the schema migrated.
	dsn := pgtest.NewDatabase(t)
	check := connect(t, dsn)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openDSN(t, dsn)
		t.Cleanup(func() { checkCounts(t, check) }) // runs before Close
		return s
	})
}

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

func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 tasks; skipped with -short")
	}
	storetest.RunLarge(t, func(t *testing.T) store.Store { return openTest(t) }, 100_000)
}

// migrationRow is a row of schema_migrations.
type migrationRow struct {
	Version int32
	Name    string
}

func migrationRows(t *testing.T, conn *pgx.Conn) []migrationRow {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[migrationRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// expectMigrated fails t unless the embedded migrations, and only they, are
// recorded once each.
func expectMigrated(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	embedded, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	got := migrationRows(t, conn)
	if len(got) != len(embedded) || len(got) == 0 {
		t.Fatalf("%d migrations recorded (%v), want %d", len(got), got, len(embedded))
	}
	for i, m := range embedded {
		if int(got[i].Version) != m.Version || got[i].Name != m.Name {
			t.Errorf("recorded migration %d = %+v, want version %d name %s", i, got[i], m.Version, m.Name)
		}
	}
}

// TestConcurrentOpen opens one fresh database from many goroutines at once,
// as server replicas starting together do: every Open succeeds and each
// migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const openers = 8
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		stores = make([]*Store, openers)
		errs   = make([]error, openers)
	)
	for i := range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	expectMigrated(t, connect(t, dsn))
	// Every store works on the one schema.
	ctx := t.Context()
	for i, s := range stores {
		if err := s.CreateTask(ctx, store.Task{ID: fmt.Sprint("t", i), Org: "o", CreatedAt: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, total, err := stores[0].ListTasks(ctx, store.TaskQuery{Org: "o", Limit: 1}); err != nil || total != openers {
		t.Errorf("total %d (error %v), want %d", total, err, openers)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	for range 3 {
		if err := Migrate(ctx, dsn); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	conn := connect(t, dsn)
	expectMigrated(t, conn)
	before := migrationRows(t, conn)

	// Open after Migrate applies nothing more, and keeps data across reopens.
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.UTC)
	if err := s.CreateTask(ctx, store.Task{ID: "t1", Org: "o", Name: "keep me", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	entries := storetest.GenLogs("t1", "task", 1, 30, created)
	if err := s.AppendLogs(ctx, entries); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	s = openDSN(t, dsn)
	if got := migrationRows(t, conn); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("migrations %v after reopening, want unchanged %v", got, before)
	}
	got, err := s.GetTask(ctx, "o", "t1")
	if err != nil || got.Name != "keep me" || !got.CreatedAt.Equal(created.Truncate(time.Microsecond)) {
		t.Errorf("after reopening: task %+v, error %v", got, err)
	}
	// The same lines again store nothing; new ones come after the old ones.
	if err := s.AppendLogs(ctx, append(entries, storetest.GenLogs("t1", "again", 1, 2, created)...)); err != nil {
		t.Fatal(err)
	}
	logs, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t1", Limit: 100})
	if err != nil || len(logs) != 32 || logs[30].Stream != "again" {
		t.Errorf("after reopening: %d entries (error %v), want 32 with the new ones last", len(logs), err)
	}
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)

	v1 := fstest.MapFS{
		"m/0001_one.sql":  {Data: []byte(`CREATE TABLE m_one (a integer); INSERT INTO m_one VALUES (1);`)},
		"m/README.md":     {Data: []byte(`not a migration`)},
		"m/0002_two.sql":  {Data: []byte(`ALTER TABLE m_one ADD COLUMN b text;`)},
		"m/0010_ten.sql":  {Data: []byte(`CREATE INDEX m_one_b ON m_one (b);`)},
		"m/0003_three.sq": {Data: []byte(`ignored: wrong extension`)},
	}
	applied, err := migrate(ctx, conn, v1, "m")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied) != "[1 2 10]" {
		t.Errorf("applied %v, want [1 2 10] in order", applied)
	}
	applied, err = migrate(ctx, conn, v1, "m")
	if err != nil || len(applied) != 0 {
		t.Errorf("second run applied %v (error %v), want nothing", applied, err)
	}

	// A new migration is applied alone; a failing one leaves neither its
	// changes nor a record, and stops the ones after it.
	v2 := fstest.MapFS{}
	for k, v := range v1 {
		v2[k] = v
	}
	v2["m/0011_eleven.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE m_eleven (x integer);`)}
	v2["m/0012_broken.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE m_broken (x integer); SELECT * FROM no_such_table;`)}
	v2["m/0013_after.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE m_after (x integer);`)}
	applied, err = migrate(ctx, conn, v2, "m")
	if err == nil || !strings.Contains(err.Error(), "0012_broken") {
		t.Fatalf("migrate with a broken migration: error %v", err)
	}
	if fmt.Sprint(applied) != "[11]" {
		t.Errorf("applied %v before the failure, want [11]", applied)
	}
	for table, want := range map[string]bool{"m_one": true, "m_eleven": true, "m_broken": false, "m_after": false} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists != want {
			t.Errorf("table %s exists: %v, want %v", table, exists, want)
		}
	}
	var recorded int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != 4 {
		t.Errorf("%d migrations recorded, want 4", recorded)
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

// TestUnstorableText checks strings PostgreSQL text cannot hold (NUL, invalid
// UTF-8) are stored with U+FFFD in their place rather than failing the call.
func TestUnstorableText(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	tk := store.Task{ID: "bad\x00id\xff", Org: "o", Name: "n\x00ame", Metadata: map[string]any{"k": "v\x00"},
		CreatedAt: time.Unix(0, 0)}
	if err := s.CreateTask(ctx, tk); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTask(ctx, "o", tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "bad\uFFFDid\uFFFD" || got.Name != "n\uFFFDame" || got.Metadata["k"] != "v\x00" {
		t.Errorf("stored task %q name %q metadata %q", got.ID, got.Name, got.Metadata)
	}
	if err := s.ApplyTransition(ctx, store.Transition{ID: tk.ID, Status: task.StatusRunning, UpdatedAt: time.Unix(1, 0)}); err != nil {
		t.Error(err)
	}
	if err := s.AppendLogs(ctx, []store.LogEntry{{TaskID: tk.ID, Stream: "s", Seq: 1, Level: store.LevelInfo,
		Message: "line\x00with\xc3nul"}}); err != nil {
		t.Fatal(err)
	}
	logs, err := s.ListLogs(ctx, store.LogQuery{TaskID: tk.ID, Limit: 10})
	if err != nil || len(logs) != 1 || logs[0].Message != "line\uFFFDwith\uFFFDnul" {
		t.Errorf("logs %+v, error %v", logs, err)
	}
}

// TestAppendLogsAtomic checks an append that fails stores none of its
// entries, although the lock and the insert travel as two statements.
func TestAppendLogsAtomic(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	// Reject one entry of the batch from the database's side.
	if _, err := conn.Exec(ctx, `ALTER TABLE logs ADD CONSTRAINT no_poison CHECK (message <> 'poison')`); err != nil {
		t.Fatal(err)
	}
	batch := storetest.GenLogs("t", "s", 1, 10, time.Unix(0, 0))
	batch[7].Message = "poison"
	if err := s.AppendLogs(ctx, batch); err == nil {
		t.Fatal("AppendLogs with a rejected entry succeeded")
	}
	got, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t", Limit: 100})
	if err != nil || len(got) != 0 {
		t.Errorf("after a failed append: %d entries (error %v), want none", len(got), err)
	}
	// The store's connections are fine afterwards.
	batch[7].Message = "fine"
	if err := s.AppendLogs(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t", Limit: 100}); err != nil || len(got) != 10 {
		t.Errorf("%d entries (error %v), want 10", len(got), err)
	}
}

// TestAppendLogsSerialisedPerTask checks an append waits for the task's
// append lock, which an append in progress holds until it commits, and that
// appends to other tasks do not.
func TestAppendLogsSerialisedPerTask(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, logLockClass, "a"); err != nil {
		t.Fatal(err)
	}
	other, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.AppendLogs(other, storetest.GenLogs("b", "s", 1, 5, time.Unix(0, 0))); err != nil {
		t.Fatalf("append to another task: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.AppendLogs(ctx, storetest.GenLogs("a", "s", 1, 5, time.Unix(0, 0))) }()
	select {
	case err := <-done:
		t.Fatalf("append to a task whose lock is held returned (error %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append still waiting after the lock was released")
	}
}

// TestLogCursorUnderConcurrentAppends pages through a task's logs with
// AfterID while several writers append to it: a reader must never skip an
// entry (one committed after the reader moved past its ID).
func TestLogCursorUnderConcurrentAppends(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const (
		writers = 6
		batches = 30
		size    = 100
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := s.AppendLogs(ctx, storetest.GenLogs("t", fmt.Sprint("w", w), int64(b*size+1), size, time.Unix(0, 0))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var after int64
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		page, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t", AfterID: after, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen[fmt.Sprint(e.Stream, "/", e.Seq)] = true
			after = e.ID
		}
		if finished && len(page) == 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != writers*batches*size {
		t.Errorf("a reader following the cursor saw %d entries, want %d", len(seen), writers*batches*size)
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
	if err := s.AppendLogs(ctx, storetest.GenLogs("x", "s", 1, 3, time.Unix(0, 0))); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendLogs with a cancelled context: %v", err)
	}
	// The store still works afterwards.
	if err := s.CreateTask(t.Context(), store.Task{ID: "x", Org: "o"}); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{"not a dsn ://", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"} {
		if s, err := Open(ctx, dsn); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
	if err := Migrate(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"); err == nil {
		t.Error("Migrate of an unreachable server succeeded")
	}
}

// BenchmarkStore runs the shared benchmarks, each on a fresh database. Their
// names follow storetest.RunBenchmarks: BenchmarkStore/ListTasksPage100k/...
// pairs with the SQLite store's BenchmarkListTasksPage100k/...
func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return openTest(b) })
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

// TestListenAcrossProcesses: a second Store on the same database (another
// replica) is told about what the first writes, by LISTEN/NOTIFY.
func TestListenAcrossProcesses(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	storetest.RunListenAcross(t, func(t *testing.T) (store.Store, store.Store) {
		return openDSN(t, dsn), openDSN(t, dsn)
	})
}
