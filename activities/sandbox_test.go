package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/task"
)

// With isolation on, task code gets nothing of the runner's environment
// but locale and the names passed on; with it off, everything but the
// runner's own settings (the behaviour before isolation).
func TestHostEnvWithIsolation(t *testing.T) {
	t.Setenv("TERRATASK_SECRET_KEY", "runner-key")
	t.Setenv("TEMPORAL_API_KEY", "temporal-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("PGPASSWORD", "pg-secret")
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("XDG_DATA_HOME", "/srv/runner/data")

	sb := testSandbox(t)
	r := &Runner{Sandbox: sb, PassEnv: []string{"AWS_*"}}
	env := r.hostEnv()
	for _, k := range []string{"TERRATASK_SECRET_KEY", "TEMPORAL_API_KEY", "PGPASSWORD", "XDG_DATA_HOME"} {
		if _, ok := env[k]; ok {
			t.Errorf("isolation on: %s reached task code", k)
		}
	}
	if env["AWS_SECRET_ACCESS_KEY"] != "aws-secret" || env["AWS_REGION"] != "eu-west-1" || env["LANG"] != "C.UTF-8" {
		t.Errorf("isolation on: passed names missing: %v", env)
	}
	if sb.Active() {
		if env["PATH"] != sandbox.Path || !strings.HasPrefix(env["XDG_DATA_DIRS"], "/srv/runner/data:") {
			t.Errorf("sandboxed: PATH %q, XDG_DATA_DIRS %q", env["PATH"], env["XDG_DATA_DIRS"])
		}
	}

	off := (&Runner{}).hostEnv() // no sandbox: off
	if off["PGPASSWORD"] != "pg-secret" || off["AWS_REGION"] != "eu-west-1" {
		t.Errorf("isolation off: the runner's environment is not passed: %v", off)
	}
	if _, ok := off["TERRATASK_SECRET_KEY"]; ok {
		t.Error("isolation off: the runner's own settings reached task code")
	}
}

func TestCheckPassEnv(t *testing.T) {
	for _, ok := range []string{"AWS_*", "HTTPS_PROXY", "GOOGLE_APPLICATION_CREDENTIALS", "TZ"} {
		if err := CheckPassEnv([]string{ok}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"TERRATASK_SECRET_KEY", "TERRATASK_*", "TEMPORAL_*", "T*", "*", "1BAD", "A-B"} {
		if err := CheckPassEnv([]string{bad}); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

// A source root (or mirror) that holds the runner's data dir is not shown
// in the sandbox: --source-root / must not hand task code the runner's
// keys.
func TestSandboxNeverShowsTheDataDir(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if !f.r.Sandbox.Active() {
		t.Skip("no sandbox on this host (CI always has one)")
	}
	key := filepath.Join(f.r.dataDir(), "planted.key")
	if err := os.WriteFile(key, []byte("RUNNER-KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.r.SourceRoots = append(f.r.SourceRoots, "/", filepath.Dir(f.r.dataDir()))
	in := f.newTask(task.Params{Files: map[string]string{"main.tf": `resource "terraform_data" "probe" {
  provisioner "local-exec" {
    command = "cat ` + key + ` || echo KEY-HIDDEN"
  }
}`}}, task.Secrets{})
	f.upTo(&in, true)
	f.mustExec("Apply", in, nil)
	logs := f.sink.text(in.Task.ID)
	if strings.Contains(logs, "RUNNER-KEY") || !strings.Contains(logs, "KEY-HIDDEN") {
		t.Fatalf("the data dir was visible through a source root:\n%s", logs)
	}
}
