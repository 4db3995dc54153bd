package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewDatabase(t *testing.T) {
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share a DSN: %s", a)
	}
	ctx := t.Context()
	for i, dsn := range []string{a, b} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var tables int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("database %d: %d tables, want a fresh database", i, tables)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE only_here (x int)`); err != nil {
			t.Fatal(err)
		}
		var version string
		if err := conn.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
			t.Fatal(err)
		}
		t.Logf("database %d: %s, server %s", i, dsn, version)
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h:5/postgres?sslmode=disable": "postgres://u:p@h:5/t_x?sslmode=disable",
		"postgresql://h":                   "postgresql://h/t_x",
		"host=/tmp port=5 dbname=postgres": "host=/tmp port=5 dbname=postgres dbname=t_x",
	} {
		got, err := withDatabase(in, "t_x")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
