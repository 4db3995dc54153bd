package postgres

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store/storetest"
)

// TestWorkspacesMigration: migration 8 fills in the workspaces used before
// it from their state (see store.WorkspaceStore).
func TestWorkspacesMigration(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)
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
	if _, err := migrate(ctx, conn, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	at := storetest.BackfillTime
	for _, tk := range storetest.BackfillTasks {
		if _, err := conn.Exec(ctx, `INSERT INTO tasks (id, org, agent_id, status, created_at, updated_at) VALUES ($1, $2, $3, 'completed', $4, $4)`,
			tk[0], tk[1], tk[2], at); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range storetest.BackfillVersions {
		if _, err := conn.Exec(ctx, `INSERT INTO state_versions (org, workspace, version, serial, lineage, md5, size, task_id, created_at, data)
			VALUES ($1, $2, $3, $3, 'l', 'm', 1, $4, $5, '\x00')`,
			v.Org, v.Workspace, v.Version, v.TaskID, at.Add(time.Duration(v.Version)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range storetest.BackfillLocks {
		if _, err := conn.Exec(ctx, `INSERT INTO state_locks (org, workspace, lock_id, task_id, info, created_at, renewed_at) VALUES ($1, $2, 'L', $3, '\x7b7d', $4, $4)`,
			l[0], l[1], l[2], at); err != nil {
			t.Fatal(err)
		}
	}
	s := openDSN(t, dsn)
	expectMigrated(t, conn)
	storetest.CheckBackfill(t, s)
}
