package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// cleanEnv unsets every TERRATASK_ variable for the test (restored after).
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TERRATASK_") {
			t.Setenv(name, "") // registers the restore
			os.Unsetenv(name)
		}
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runCLI runs the real entry point and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// checked runs a command with --check-config and returns name -> "value (source)".
func checked(t *testing.T, args ...string) map[string]string {
	t.Helper()
	code, out, errOut := runCLI(t, append(args, "--check-config")...)
	if code != 0 {
		t.Fatalf("run %v: exit %d, stderr:\n%s", args, code, errOut)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		m[k] = v
	}
	return m
}

func TestConfigPrecedence(t *testing.T) {
	file := "http-address: 0.0.0.0:7000\nnamespace: from-file\nlog-level: warn\nrunner-wait: 2h\nskip-search-attributes: true\n"
	cases := []struct {
		name         string
		env          map[string]string
		args         []string
		key          string
		want         string
		file         bool // pass the config file
		viaEnvConfig bool
	}{
		{name: "default", key: "http-address", want: "127.0.0.1:8080 (default)"},
		{name: "file over default", file: true, key: "http-address", want: "0.0.0.0:7000 (file)"},
		{name: "env over file", file: true, env: map[string]string{"TERRATASK_HTTP_ADDRESS": "0.0.0.0:7001"}, key: "http-address", want: "0.0.0.0:7001 (env)"},
		{name: "flag over env and file", file: true, env: map[string]string{"TERRATASK_HTTP_ADDRESS": "0.0.0.0:7001"}, args: []string{"--http-address", "0.0.0.0:7002"}, key: "http-address", want: "0.0.0.0:7002 (flag)"},
		{name: "env without file", env: map[string]string{"TERRATASK_NAMESPACE": "from-env"}, key: "namespace", want: "from-env (env)"},
		{name: "file duration", file: true, key: "runner-wait", want: "2h0m0s (file)"},
		{name: "file bool", file: true, key: "skip-search-attributes", want: "true (file)"},
		{name: "flag bool over file", file: true, args: []string{"--skip-search-attributes=false"}, key: "skip-search-attributes", want: "false (flag)"},
		{name: "TERRATASK_CONFIG names the file", viaEnvConfig: true, key: "namespace", want: "from-file (file)"},
		{name: "untouched keys keep defaults", file: true, key: "temporal-address", want: "127.0.0.1:7233 (default)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			path := writeFile(t, "server.yaml", file)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := []string{"server"}
			if tc.file {
				args = append(args, "--config", path)
			}
			if tc.viaEnvConfig {
				t.Setenv("TERRATASK_CONFIG", path)
			}
			args = append(args, tc.args...)
			got := checked(t, args...)
			if got[tc.key] != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, got[tc.key], tc.want)
			}
		})
	}
}

func TestConfigFlagWinsOverEnvConfig(t *testing.T) {
	cleanEnv(t)
	a := writeFile(t, "a.yaml", "namespace: a\n")
	b := writeFile(t, "b.yaml", "namespace: b\n")
	t.Setenv("TERRATASK_CONFIG", a)
	if got := checked(t, "server", "--config", b)["namespace"]; got != "b (file)" {
		t.Errorf("namespace = %q, want b from --config", got)
	}
}

func TestConfigRepeatable(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  string
		args []string
		want string
	}{
		{name: "default", want: " (default)"}, // RunDev applies "local" when empty
		{name: "file list", file: "runner: [a, b]\n", want: "a,b (file)"},
		{name: "file block list", file: "runner:\n  - a\n  - b\n  - c\n", want: "a,b,c (file)"},
		{name: "file scalar", file: "runner: solo\n", want: "solo (file)"},
		{name: "env comma list over file", file: "runner: [a, b]\n", env: "x,y", want: "x,y (env)"},
		{name: "repeated flag over all", file: "runner: [a, b]\n", env: "x,y", args: []string{"--runner", "p", "--runner", "q"}, want: "p,q (flag)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			args := []string{"dev"}
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, "dev.yaml", tc.file))
			}
			if tc.env != "" {
				t.Setenv("TERRATASK_RUNNER", tc.env)
			}
			args = append(args, tc.args...)
			if got := checked(t, args...)["runner"]; got != tc.want {
				t.Errorf("runner = %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("runner source-root list", func(t *testing.T) {
		cleanEnv(t)
		path := writeFile(t, "runner.yaml", "id: eu\nsource-root: [/srv/a, /srv/b]\nstate-dir: /shared/state\ngrace: 45s\n")
		got := checked(t, "runner", "--config", path)
		for k, want := range map[string]string{"id": "eu (file)", "source-root": "/srv/a,/srv/b (file)", "state-dir": "/shared/state (file)", "grace": "45s (file)"} {
			if got[k] != want {
				t.Errorf("%s = %q, want %q", k, got[k], want)
			}
		}
	})
}

func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		name string
		cmd  string
		file string
		want []string
	}{
		{name: "unknown key", cmd: "server", file: "http-address: :8080\nhttp-adress: :9090\n", want: []string{`unknown key "http-adress"`, "line 2"}},
		{name: "key of another command", cmd: "server", file: "id: eu\n", want: []string{`unknown key "id"`}},
		{name: "config in config", cmd: "server", file: "config: other.yaml\n", want: []string{`unknown key "config"`}},
		{name: "secret key", cmd: "runner", file: "secret-key: c2VjcmV0\n", want: []string{`"secret-key"`, "secrets are not allowed", "secret-key-file"}},
		{name: "temporal api key", cmd: "server", file: "temporal-api-key: abc\n", want: []string{`"temporal-api-key"`, "TERRATASK_TEMPORAL_API_KEY"}},
		{name: "store with password", cmd: "server", file: "store: postgres://tt:hunter2@db/tt\n", want: []string{`"store"`, "password", "TERRATASK_STORE"}},
		{name: "store with password parameter", cmd: "migrate", file: "store: postgres://tt@db/tt?password=hunter2\n", want: []string{`"store"`, "password"}},
		{name: "list for a single flag", cmd: "server", file: "http-address: [a, b]\n", want: []string{`"http-address"`, "not a list"}},
		{name: "mapping value", cmd: "server", file: "namespace: {a: b}\n", want: []string{`"namespace"`, "plain value"}},
		{name: "bad duration", cmd: "server", file: "runner-wait: soon\n", want: []string{"runner-wait"}},
		{name: "not a mapping", cmd: "server", file: "- a\n- b\n", want: []string{"mapping"}},
		{name: "duplicate key", cmd: "server", file: "namespace: a\nnamespace: b\n", want: []string{"namespace"}},
		{name: "bad yaml", cmd: "server", file: "namespace: [\n", want: []string{"config file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			path := writeFile(t, "c.yaml", tc.file)
			code, _, errOut := runCLI(t, tc.cmd, "--config", path)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if strings.Contains(errOut, "hunter2") {
				t.Errorf("stderr echoes the password: %s", errOut)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		cleanEnv(t)
		code, _, errOut := runCLI(t, "server", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
		if code != 2 || !strings.Contains(errOut, "reading config file") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("empty file sets nothing", func(t *testing.T) {
		cleanEnv(t)
		got := checked(t, "server", "--config", writeFile(t, "e.yaml", "# nothing yet\n"))
		if got["http-address"] != "127.0.0.1:8080 (default)" {
			t.Errorf("http-address = %q", got["http-address"])
		}
	})
	t.Run("store password allowed from env, redacted when printed", func(t *testing.T) {
		cleanEnv(t)
		t.Setenv("TERRATASK_STORE", "postgres://tt:hunter2@db/tt")
		got := checked(t, "server")
		if strings.Contains(got["store"], "hunter2") || !strings.Contains(got["store"], "(env)") {
			t.Errorf("store = %q", got["store"])
		}
	})
}

func TestHelpMentionsConfig(t *testing.T) {
	cleanEnv(t)
	for _, cmd := range []string{"dev", "server", "runner", "migrate", "namespace create"} {
		code, out, _ := runCLI(t, append(strings.Fields(cmd), "-h")...)
		if code != 0 {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
		for _, w := range []string{"--config", "--check-config", "TERRATASK_CONFIG", "TERRATASK_<NAME>", "flag > environment > file > default"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s -h lacks %q", cmd, w)
			}
		}
	}
}

// TestEgressAllowFlags: --webhook-allow and --source-allow come from flags,
// the environment (comma lists) and the config file (lists), like
// --notify-allow, on every command that has them.
func TestEgressAllowFlags(t *testing.T) {
	for _, c := range []struct {
		command string
		keys    []string
	}{
		{"dev", []string{"notify-allow", "webhook-allow", "source-allow"}},
		{"server", []string{"notify-allow", "webhook-allow", "source-allow"}},
		{"runner", []string{"source-allow"}},
	} {
		cleanEnv(t)
		file := ""
		for _, k := range c.keys {
			file += k + ": [127.0.0.1, \"*.corp.example\"]\n"
		}
		got := checked(t, c.command, "--config", writeFile(t, "c.yaml", file))
		for _, k := range c.keys {
			if got[k] != "127.0.0.1,*.corp.example (file)" {
				t.Errorf("%s %s from the file = %q", c.command, k, got[k])
			}
		}
		for _, k := range c.keys {
			t.Setenv(envName(k), "10.0.0.5:8443,github.com")
		}
		got = checked(t, c.command, "--config", writeFile(t, "c.yaml", file))
		for _, k := range c.keys {
			if got[k] != "10.0.0.5:8443,github.com (env)" {
				t.Errorf("%s %s from the environment = %q", c.command, k, got[k])
			}
		}
		args := []string{c.command}
		for _, k := range c.keys {
			args = append(args, "--"+k, "a.example", "--"+k, "[::1]:9000")
		}
		got = checked(t, args...)
		for _, k := range c.keys {
			if got[k] != "a.example,[::1]:9000 (flag)" {
				t.Errorf("%s --%s = %q", c.command, k, got[k])
			}
		}
		cleanEnv(t)
		code, out, _ := runCLI(t, c.command, "--help")
		for _, k := range c.keys {
			if code != 0 || !strings.Contains(out, "--"+k) {
				t.Errorf("%s --help does not mention --%s", c.command, k)
			}
		}
	}
}
