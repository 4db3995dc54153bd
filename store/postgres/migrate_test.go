package postgres

import (
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
)

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
