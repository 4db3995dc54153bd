package postgres

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store/storetest"
)

// TestPolicyMigration: migration 10 adds policies, a task's policy check
// and a plan's policy input to a database holding tasks and plans.
func TestPolicyMigration(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)
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
	if _, err := migrate(ctx, conn, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	if _, err := conn.Exec(ctx, `INSERT INTO tasks (id, org, status, created_at, updated_at) VALUES ('task-old', 'o', 'waiting_approval', $1, $1)`,
		at); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO plans (task_id, org, summary, plan_json, plan_text, digest, created_at)
		VALUES ('task-old', 'o', '{}', '\x7b7d', 'plan', 'd', $1)`, at); err != nil {
		t.Fatal(err)
	}
	storetest.CheckPolicyUpgrade(t, openDSN(t, dsn), "o", "task-old")
}
