package deployments

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// ---- the terratask binary, to check flags and config files against ----

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func terratask(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "terratask-deployments-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "terratask")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/terratask").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building terratask: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// checkConfig runs `terratask ARGS --check-config` with only env set among
// TERRATASK_ variables and returns flag -> "value (source)".
func checkConfig(t *testing.T, args []string, env map[string]string) map[string]string {
	t.Helper()
	cmd := exec.Command(terratask(t), append(append([]string{}, args...), "--check-config")...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERRATASK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("terratask %v --check-config: %v\n%s", args, err, errOut.String())
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// value strips the " (source)" suffix of a checkConfig entry.
func value(s string) string {
	if i := strings.LastIndex(s, " ("); i >= 0 {
		return s[:i]
	}
	return s
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// writeTemp writes body to a temp file and returns its path.
func writeTemp(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The sample config files of the compose setup are valid for the binary on
// their own (the compose test checks them as mounted).
func TestConfigFilesRefuseSecrets(t *testing.T) {
	for _, f := range []string{"config/server.yaml", "config/runner.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "postgres://") {
			t.Errorf("%s holds a DSN; it belongs in TERRATASK_STORE", f)
		}
	}
}

// checkRunnerTrust checks what a runner host is given (issue 20): it
// belongs to org "default" and writes task logs, plans and its host row
// through serverURL's runner API, keeping state there too; neither its
// environment (env, what the deployment sets) nor its configuration (cfg,
// from checkConfig) gives it the store or the control plane's secret key.
// It returns the runner's secret-key-file, for the caller to check that it
// is the org key's file.
func checkRunnerTrust(t *testing.T, name string, env, cfg map[string]string, serverURL string) string {
	t.Helper()
	for _, k := range []string{"TERRATASK_STORE", "TERRATASK_SECRET_KEY"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s: the runner gets %s; a runner holds neither the store nor the secret key", name, k)
		}
	}
	if s := value(cfg["store"]); s != "" {
		t.Errorf("%s: the runner has --store %q; it writes through --server-url", name, s)
	}
	if o := value(cfg["org"]); o != "default" {
		t.Errorf("%s: org %q, want default", name, o)
	}
	if u := value(cfg["server-url"]); u != serverURL {
		t.Errorf("%s: server-url %q, want the server %s", name, u, serverURL)
	}
	// State on the server too: state-url defaults to server-url.
	if u := value(cfg["state-url"]); u != "" && u != serverURL {
		t.Errorf("%s: state-url %q, want it empty (server-url) or %s", name, u, serverURL)
	}
	key := value(cfg["secret-key-file"])
	if key == "" {
		t.Errorf("%s: no secret-key-file: the runner needs its org's key", name)
	}
	return key
}
