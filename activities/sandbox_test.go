package activities

import (
	"strings"
	"testing"

	"github.com/terratask/terratask/internal/sandbox"
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
