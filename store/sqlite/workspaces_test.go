package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/store/storetest"
)

// TestWorkspacesMigration: migration 8 fills in the workspaces used before
// it from their state (see store.WorkspaceStore).
func TestWorkspacesMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	all, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, m := range all {
		if m.Version < 8 {
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
	at := dbTime(storetest.BackfillTime)
	for _, tk := range storetest.BackfillTasks {
		if _, err := w.ExecContext(ctx, `INSERT INTO tasks (id, org, agent_id, status, created_at, updated_at) VALUES (?, ?, ?, 'completed', ?, ?)`,
			tk[0], tk[1], tk[2], at, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range storetest.BackfillVersions {
		if _, err := w.ExecContext(ctx, `INSERT INTO state_versions (org, workspace, version, serial, lineage, md5, size, task_id, created_at, data)
			VALUES (?, ?, ?, ?, 'l', 'm', 1, ?, ?, x'00')`,
			v.Org, v.Workspace, v.Version, v.Version, v.TaskID, dbTime(storetest.BackfillTime.Add(time.Duration(v.Version)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range storetest.BackfillLocks {
		if _, err := w.ExecContext(ctx, `INSERT INTO state_locks (org, workspace, lock_id, task_id, info, created_at, renewed_at) VALUES (?, ?, 'L', ?, x'7b7d', ?, ?)`,
			l[0], l[1], l[2], at, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckBackfill(t, openPath(t, path))
}
