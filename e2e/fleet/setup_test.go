package fleet

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/internal/pgtest"
)

// fleet is the shared part of a fleet: a Temporal server on PostgreSQL, the
// store's database, the keys and secret files, the terratask binary and the
// API replicas.
type fleet struct {
	temporal           *temporalServer
	replicas           []*apiClient
	dir, bin           string
	env                []string
	storeDSN, keysPath string
	secretPath         string
	// orgKeyPath holds the default org's key, the runners' (they never
	// hold the secret key).
	orgKeyPath string
	began      time.Time
}

// fleetKey is a key the keys file holds besides the fleet's admin key.
type fleetKey struct{ name, org, role, raw string }

// startFleet starts Temporal, creates the store and starts n API replicas,
// whose keys file holds the admin key of org default and extra.
func startFleet(t testing.TB, n int, extra ...fleetKey) *fleet {
	t.Helper()
	pgtest.Start(t) // skips (or fails under CI) when PostgreSQL is missing
	mod := findTemporalModule(t)
	bins := temporalBinDir(t, mod) // may build them: before the clock starts
	f := &fleet{began: time.Now(), dir: t.TempDir()}
	dir := f.dir

	// terratask, built once.
	f.bin = filepath.Join(dir, "terratask")
	if out, err := exec.Command("go", "build", "-o", f.bin, "github.com/terratask/terratask/cmd/terratask").CombinedOutput(); err != nil {
		t.Fatalf("building terratask: %v\n%s", err, out)
	}

	f.temporal = startTemporal(t, mod, bins, filepath.Join(dir, "temporal"))
	t.Logf("Temporal %s on PostgreSQL ready at %s after %s", mod.version, f.temporal.address, time.Since(f.began).Round(100*time.Millisecond))

	// Shared configuration: the store, the keys file and the secret key.
	f.storeDSN = pgtest.NewDatabase(t)
	f.keysPath = filepath.Join(dir, "keys.yaml")
	keys := fmt.Sprintf("keys:\n  - name: fleet-admin\n    org: default\n    role: admin\n    hash: %s\n", auth.HashKey(adminKey))
	for _, k := range extra {
		keys += fmt.Sprintf("  - name: %s\n    org: %s\n    role: %s\n    hash: %s\n", k.name, k.org, k.role, auth.HashKey(k.raw))
	}
	if err := os.WriteFile(f.keysPath, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	f.secretPath = filepath.Join(dir, "secret.key")
	var sk [32]byte
	_, _ = rand.Read(sk[:])
	if err := os.WriteFile(f.secretPath, []byte(base64.StdEncoding.EncodeToString(sk[:])), 0o600); err != nil {
		t.Fatal(err)
	}
	f.env = []string{"TF_CLI_CONFIG_FILE=/dev/null", "TERRATASK_SECRET_KEY="}
	f.orgKeyPath = f.orgKeyFile(t, "default")

	// API replicas, one after the other (the first migrates the store and
	// registers the search attributes; the others find them done).
	for i := range n {
		p := startProc(t, fmt.Sprintf("server-%d", i+1), filepath.Join(dir, fmt.Sprintf("server-%d.log", i+1)), f.env, f.bin,
			"server", "--temporal-address", f.temporal.address, "--store", f.storeDSN, "--api-keys-file", f.keysPath,
			"--secret-key-file", f.secretPath, "--http-address", "127.0.0.1:0", "--log-level", "info")
		ready := waitLogLine(t, p, "terratask server ready", 2*time.Minute)
		f.replicas = append(f.replicas, &apiClient{base: "http://" + ready["http"].(string), key: adminKey, proc: p})
	}
	return f
}

// orgKeyFile writes the key of org's runners, as an operator makes it
// (`terratask keys org`), to a file of its own and returns its path.
func (f *fleet) orgKeyFile(t testing.TB, org string) string {
	t.Helper()
	out, err := exec.Command(f.bin, "keys", "org", "--org", org, "--secret-key-file", f.secretPath).Output()
	if err != nil {
		t.Fatalf("terratask keys org --org %s: %v", org, err)
	}
	path := filepath.Join(f.dir, "org-"+org+".key")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fixture(t testing.TB, name string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// waitLogLine waits for a JSON log line whose msg is msg and returns its
// fields.
func waitLogLine(t testing.TB, p *proc, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.output(), "\n") {
			if !strings.Contains(line, msg) {
				continue
			}
			var fields map[string]any
			if err := json.Unmarshal([]byte(line), &fields); err == nil && fields["msg"] == msg {
				return fields
			}
		}
		if p.exited() {
			t.Fatalf("%s exited before %q: %v\n%s", p.name, msg, p.err(), p.tail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %s\n%s", p.name, msg, timeout, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
