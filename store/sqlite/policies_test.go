package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/store/storetest"
)

// TestPolicyMigration: migration 10 adds policies, a task's policy check
// and a plan's policy input to a database holding tasks and plans.
func TestPolicyMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	all, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, m := range all {
		if m.Version < 10 {
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
	at := dbTime(time.Now().Add(-time.Hour))
	if _, err := w.ExecContext(ctx, `INSERT INTO tasks (id, org, status, created_at, updated_at) VALUES ('task-old', 'o', 'waiting_approval', ?, ?)`,
		at, at); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO plans (task_id, org, summary, plan_json, plan_text, digest, created_at)
		VALUES ('task-old', 'o', '{}', x'7b7d', 'plan', 'd', ?)`, at); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckPolicyUpgrade(t, openPath(t, path), "o", "task-old")
}
