package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/terratask/terratask/store/internal/sqlkit"
)

// migrationFS holds the schema migrations, applied in version order. A file
// is named NNNN_description.sql; NNNN is its version. Applied migrations are
// never edited: a schema change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockKey is the key of the transaction-scoped advisory lock that
// serialises migrations of one database between processes.
const migrationLockKey int64 = 0x7474_6d69_6772_6174 // "ttmigrat"

// migration is one versioned schema change; loadMigrations reads them.
type migration = sqlkit.Migration

var loadMigrations = sqlkit.LoadMigrations

// createMigrationsTable creates the table that records applied migrations.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate applies the migrations of fsys/dir that the database has not
// recorded yet, each in its own transaction together with its
// schema_migrations row, so a failed migration leaves neither a partial schema
// nor a record. Each transaction first takes an advisory lock, so processes
// migrating the same database at once apply each migration exactly once; a
// database that is up to date costs one query and no lock. It returns the
// versions it applied.
func migrate(ctx context.Context, conn *pgx.Conn, fsys fs.FS, dir string) ([]int, error) {
	ms, err := loadMigrations(fsys, dir)
	if err != nil {
		return nil, err
	}
	recorded, err := recordedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range ms {
		if recorded[m.Version] {
			continue
		}
		done, err := applyMigration(ctx, conn, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// recordedVersions returns the versions schema_migrations holds; none when
// the table does not exist yet.
func recordedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	var versions []int32
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err == nil {
		versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return map[int]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out := make(map[int]bool, len(versions))
	for _, v := range versions {
		out[int(v)] = true
	}
	return out, nil
}

// applyMigration applies m unless it is recorded; it reports whether it did.
func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit

	// Held until the transaction ends. CREATE TABLE IF NOT EXISTS runs under
	// it too: two sessions creating the same table at once can fail.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return false, fmt.Errorf("migration %s: lock: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var recorded bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&recorded); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if recorded {
		return false, nil
	}
	// Without arguments pgx sends the text with the simple protocol, which
	// runs every statement of a multi-statement migration.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
		return false, fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return true, nil
}
