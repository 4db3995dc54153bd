package sqlite

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

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
