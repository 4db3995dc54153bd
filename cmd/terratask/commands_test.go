package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/internal/pgtest"
)

func TestMigrateSQLite(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join(t.TempDir(), "sub", "terratask.db")
	for i := 0; i < 2; i++ { // a second run is a no-op
		code, out, errOut := runCLI(t, "migrate", "--store", path)
		if code != 0 {
			t.Fatalf("run %d: exit %d, stderr %s", i, code, errOut)
		}
		if !strings.Contains(out, "store migrated") {
			t.Errorf("stdout %q", out)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no database file: %v", err)
	}
}

func TestMigratePostgres(t *testing.T) {
	cleanEnv(t)
	dsn := pgtest.NewDatabase(t)
	t.Setenv("TERRATASK_STORE", dsn) // the environment path, as in a Kubernetes Job
	for i := 0; i < 2; i++ {
		if code, _, errOut := runCLI(t, "migrate"); code != 0 {
			t.Fatalf("run %d: exit %d, stderr %s", i, code, errOut)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'task%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no task tables after migrate")
	}
}

func TestMigrateErrors(t *testing.T) {
	cleanEnv(t)
	if code, _, errOut := runCLI(t, "migrate"); code != 2 || !strings.Contains(errOut, "--store is required") {
		t.Errorf("no store: exit %d, stderr %q", code, errOut)
	}
	// Nothing listens on port 1: a clear error, the password redacted.
	code, _, errOut := runCLI(t, "migrate", "--store", "postgres://tt:hunter2@127.0.0.1:1/tt?connect_timeout=5", "--timeout", "20s")
	if code != 1 || !strings.Contains(errOut, "migrating") {
		t.Errorf("unreachable: exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("stderr echoes the password: %s", errOut)
	}
}

// The server checks its options before it reaches Temporal or a database.
func TestServerRejectsMissingOptions(t *testing.T) {
	keys := writeFile(t, "keys.yaml", "keys:\n  - {name: ci, org: acme, role: operator, hash: \"sha256:"+strings.Repeat("ab", 32)+"\"}\n")
	secret := writeFile(t, "secret.key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "no keys file", args: []string{"--store", "postgres://tt@127.0.0.1:1/tt"}, want: "--api-keys-file is required"},
		{name: "no store", args: []string{"--api-keys-file", keys}, want: "--store is required"},
		{name: "no secret key", args: []string{"--api-keys-file", keys, "--store", "postgres://tt@127.0.0.1:1/tt"}, want: "a secret key is required"},
		{name: "unreadable secret key file", args: []string{"--api-keys-file", keys, "--store", "postgres://tt@127.0.0.1:1/tt", "--secret-key-file", filepath.Join(t.TempDir(), "none")}, want: "--secret-key-file"},
		{name: "bad secret key", args: []string{"--api-keys-file", keys, "--store", "postgres://tt@127.0.0.1:1/tt"}, env: map[string]string{"TERRATASK_SECRET_KEY": "short"}, want: "key"},
		{name: "bad webhook-allow", args: []string{"--api-keys-file", keys, "--store", "postgres://tt@127.0.0.1:1/tt", "--secret-key-file", secret, "--webhook-allow", "https://hooks.example.com/x"}, want: `--webhook-allow "https://hooks.example.com/x": want a host`},
		{name: "bad source-allow", args: []string{"--api-keys-file", keys, "--store", "postgres://tt@127.0.0.1:1/tt", "--secret-key-file", secret}, env: map[string]string{"TERRATASK_SOURCE_ALLOW": "github.com,x:99999"}, want: `--source-allow "x:99999": invalid port`},
		{name: "unreachable postgres store", args: []string{"--api-keys-file", keys, "--store", "postgres://tt@127.0.0.1:1/tt?connect_timeout=5", "--secret-key-file", secret}, want: "opening store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errOut := runCLI(t, append([]string{"server"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q, want it to contain %q", code, errOut, tc.want)
			}
		})
	}
}

func TestRunnerRejectsMissingOptions(t *testing.T) {
	cleanEnv(t)
	if code, _, errOut := runCLI(t, "runner", "--store", "x.db"); code == 0 || !strings.Contains(errOut, "--id is required") {
		t.Errorf("no id: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "runner", "--id", "eu"); code == 0 || !strings.Contains(errOut, "--server-url is required") {
		t.Errorf("no server: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "runner", "--id", "eu", "--server-url", "http://127.0.0.1:1"); code == 0 || !strings.Contains(errOut, "--org is required") {
		t.Errorf("no org: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "runner", "--id", "eu", "--server-url", "http://127.0.0.1:1", "--store", "x.db"); code == 0 || !strings.Contains(errOut, "not both") {
		t.Errorf("server and store: exit %d, stderr %q", code, errOut)
	}
}
