package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/terratask/terratask/store/storetest"
)

// TestOIDCKeys runs the shared OIDC key checks on two stores opened on one
// file, as two server replicas sharing it.
func TestOIDCKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	storetest.OIDCKeys(t, openPath(t, path), openPath(t, path))
}

// TestOIDCKeyMigration: migration 11 adds the OIDC keys to a database
// migrated to 10.
func TestOIDCKeyMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
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
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, w, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := openPath(t, path)
	if keys, err := s.OIDCKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("OIDCKeys after migration 11 = %v, %v; want none", keys, err)
	}
}
