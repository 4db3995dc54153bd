package postgres

import (
	"testing"
	"testing/fstest"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store/storetest"
)

// TestOIDCKeys runs the shared OIDC key checks on two stores (two pools)
// on one database, as two server replicas sharing it.
func TestOIDCKeys(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	storetest.OIDCKeys(t, openDSN(t, dsn), openDSN(t, dsn))
}

// TestOIDCKeyMigration: migration 11 adds the OIDC keys to a database
// migrated to 10.
func TestOIDCKeyMigration(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)
	all, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, m := range all {
		if m.Version < 11 {
			old["migrations/"+m.Name+".sql"] = &fstest.MapFile{Data: []byte(m.SQL)}
		}
	}
	if _, err := migrate(ctx, conn, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	s := openDSN(t, dsn)
	if keys, err := s.OIDCKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("OIDCKeys after migration 11 = %v, %v; want none", keys, err)
	}
}
