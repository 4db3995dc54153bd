package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/terratask/terratask/store/internal/sqlkit"
)

// migrationFS holds the schema migrations, applied in version order at Open.
// A file is named NNNN_description.sql; NNNN is its version. Applied
// migrations are never edited: a schema change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one versioned schema change; loadMigrations reads them.
type migration = sqlkit.Migration

var loadMigrations = sqlkit.LoadMigrations

// migrate applies the migrations of fsys/dir that db has not recorded yet, each
// in its own transaction together with its schema_migrations row, so a failed
// migration leaves neither a partial schema nor a record. db must be the write
// pool (transactions BEGIN IMMEDIATE), which also makes two processes opening
// the same file at once apply each migration exactly once. It returns the
// versions it applied.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, dir string) ([]int, error) {
	ms, err := loadMigrations(fsys, dir)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []int
	for _, m := range ms {
		done, err := applyMigration(ctx, db, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// applyMigration applies m unless it is recorded; it reports whether it did.
func applyMigration(ctx context.Context, db *sql.DB, m migration) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixMicro()); err != nil {
		return false, fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return true, nil
}
