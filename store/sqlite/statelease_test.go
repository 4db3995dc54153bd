package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/store"
)

// TestStateLockLeaseMigration: a lock stored before migration 7 counts as
// renewed when it was taken, and renews after the upgrade.
func TestStateLockLeaseMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	all, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, m := range all {
		if m.Version < 7 {
			old["migrations/"+m.Name+".sql"] = &fstest.MapFile{Data: []byte(m.SQL)}
		}
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, w, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := w.ExecContext(ctx, `INSERT INTO state_locks (org, workspace, lock_id, task_id, fence, info, created_at) VALUES ('o', 'w', 'L', 'task-1', 3, '{}', ?)`,
		dbTime(created)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	s := openPath(t, path)
	l, err := s.GetStateLock(ctx, "o", "w")
	if err != nil || !l.RenewedAt.Equal(created) || !l.CreatedAt.Equal(created) || l.TaskID != "task-1" {
		t.Fatalf("an old lock after the upgrade: %+v, %v; want renewed at %v", l, err, created)
	}
	if err := s.LockState(ctx, store.StateLock{Org: "o", Workspace: "w", ID: "L", TaskID: "task-1"}); err != nil {
		t.Fatal(err)
	}
	if l, err := s.GetStateLock(ctx, "o", "w"); err != nil || time.Since(l.RenewedAt) > time.Minute || !l.CreatedAt.Equal(created) {
		t.Fatalf("an old lock renewed: %+v, %v", l, err)
	}
}
