package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	"github.com/terratask/terratask/internal/pgtest"
)

// EnvTemporalBin names the directory holding the Temporal `server` and `sql`
// binaries; by default they are cached next to the Go build cache, in
// terratask-temporal-bin/VERSION. scripts/temporal-bin.sh uses the same rule.
const EnvTemporalBin = "TERRATASK_TEMPORAL_BIN"

// temporalModule is the go.temporal.io/server module go.mod requires: its
// directory (config and schema files) and version.
type temporalModule struct{ dir, version string }

func findTemporalModule(t testing.TB) temporalModule {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "go.temporal.io/server").Output()
	if err != nil {
		t.Fatalf("go list -m go.temporal.io/server: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] == "" {
		// The module is required but not downloaded yet.
		if dl, err := exec.Command("go", "mod", "download", "go.temporal.io/server").CombinedOutput(); err != nil {
			t.Fatalf("go mod download go.temporal.io/server: %v\n%s", err, dl)
		}
		return findTemporalModule(t)
	}
	return temporalModule{dir: f[0], version: f[1]}
}

// temporalBinDir returns the directory of the cached Temporal binaries,
// building them with `go install` when missing.
func temporalBinDir(t testing.TB, mod temporalModule) string {
	t.Helper()
	dir := os.Getenv(EnvTemporalBin)
	if dir == "" {
		out, err := exec.Command("go", "env", "GOCACHE").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == "off" {
			t.Fatalf("go env GOCACHE: %v %q; set %s", err, out, EnvTemporalBin)
		}
		dir = filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "terratask-temporal-bin", mod.version)
	}
	if haveTemporalBins(dir) {
		return dir
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	// Install into a sibling directory and rename it into place, so that a
	// concurrent or interrupted build never leaves half a directory.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	t.Logf("building the Temporal server %s into %s (a few minutes; cached for later runs)", mod.version, dir)
	cmd := exec.Command("go", "install",
		"go.temporal.io/server/cmd/server@"+mod.version, "go.temporal.io/server/cmd/tools/sql@"+mod.version)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install the Temporal server: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !haveTemporalBins(dir) {
		t.Fatalf("caching the Temporal binaries: %v", err)
	}
	t.Logf("built the Temporal server in %s", time.Since(start).Round(time.Second))
	return dir
}

func haveTemporalBins(dir string) bool {
	for _, name := range []string{"server", "sql"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// temporalServer is a running Temporal cluster node.
type temporalServer struct {
	proc    *proc
	address string // frontend gRPC host:port
}

// startTemporal sets up the schema of two fresh databases of the shared
// PostgreSQL cluster and starts a Temporal node on them with free ports, then
// registers the default namespace.
func startTemporal(t testing.TB, mod temporalModule, bin, dir string) *temporalServer {
	t.Helper()
	cluster := pgtest.Start(t)
	mainDSN := cluster.NewDatabase(t)
	visDSN := cluster.NewDatabase(t)
	mainCfg, err := pgx.ParseConfig(mainDSN)
	if err != nil {
		t.Fatal(err)
	}
	visCfg, err := pgx.ParseConfig(visDSN)
	if err != nil {
		t.Fatal(err)
	}
	schema := filepath.Join(mod.dir, "schema", "postgresql", "v12")
	sqlTool := func(db string, args ...string) {
		t.Helper()
		base := []string{"--plugin", "postgres12", "--ep", mainCfg.Host, "-p", strconv.Itoa(int(mainCfg.Port)),
			"-u", mainCfg.User, "--db", db}
		if mainCfg.Password != "" {
			base = append(base, "--pw", mainCfg.Password)
		}
		cmd := exec.Command(filepath.Join(bin, "sql"), append(base, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("temporal sql %v: %v\n%s", args, err, out)
		}
	}
	for _, db := range []struct{ name, schema string }{
		{mainCfg.Database, filepath.Join(schema, "temporal", "versioned")},
		{visCfg.Database, filepath.Join(schema, "visibility", "versioned")},
	} {
		sqlTool(db.name, "setup-schema", "-v", "0.0")
		sqlTool(db.name, "update-schema", "-d", db.schema)
	}

	ports := freePorts(t, 11)
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	frontend := fmt.Sprintf("127.0.0.1:%d", ports[0])
	writeTemporalConfig(t, mod, cfgDir, mainCfg, visCfg, ports)

	// --config is relative to --root.
	p := startProc(t, "temporal", filepath.Join(dir, "temporal.log"), nil, filepath.Join(bin, "server"),
		"--root", dir, "--config", "config", "--env", "development", "--allow-no-auth", "start")

	// Wait for the frontend, then register the namespace.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var c client.Client
	for {
		c, err = client.DialContext(ctx, client.Options{HostPort: frontend, Namespace: "default", Logger: quietLogger{}})
		if err == nil {
			break
		}
		if p.exited() {
			t.Fatalf("the Temporal server exited: %v\n%s", p.err(), p.tail())
		}
		if ctx.Err() != nil {
			t.Fatalf("the Temporal frontend did not answer: %v\n%s", err, p.tail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	defer c.Close()
	for {
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        "default",
			WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			break
		}
		if ctx.Err() != nil || p.exited() {
			t.Fatalf("registering the default namespace: %v\n%s", err, p.tail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The namespace is usable once the frontend's registry knows it.
	for {
		_, err := c.WorkflowService().ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default"})
		if err == nil {
			break
		}
		if ctx.Err() != nil || p.exited() {
			t.Fatalf("the default namespace did not become usable: %v\n%s", err, p.tail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	return &temporalServer{proc: p, address: frontend}
}

// writeTemporalConfig writes DIR/development.yaml, the module's
// config/development-postgres12.yaml with its databases, ports and dynamic
// config pointed at this test's, and the dynamic config file it names.
func writeTemporalConfig(t testing.TB, mod temporalModule, dir string, mainCfg, visCfg *pgx.ConnConfig, ports []int) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(mod.dir, "config", "development-postgres12.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("parsing the Temporal config template: %v", err)
	}
	m := func(v any, path ...string) map[string]any {
		for _, k := range path {
			next, ok := v.(map[string]any)[k]
			if !ok {
				t.Fatalf("the Temporal config template has no %s", strings.Join(path, "."))
			}
			v = next
		}
		return v.(map[string]any)
	}
	for name, pc := range map[string]*pgx.ConnConfig{"postgres-default": mainCfg, "postgres-visibility": visCfg} {
		sql := m(cfg, "persistence", "datastores", name, "sql")
		sql["databaseName"] = pc.Database
		sql["connectAddr"] = fmt.Sprintf("%s:%d", pc.Host, pc.Port)
		sql["user"] = pc.User
		sql["password"] = pc.Password
	}
	global := m(cfg, "global")
	m(global, "pprof")["port"] = ports[9]
	m(global, "metrics", "prometheus")["listenAddress"] = fmt.Sprintf("127.0.0.1:%d", ports[10])
	for i, svc := range []string{"frontend", "history", "matching", "worker"} {
		rpc := m(cfg, "services", svc, "rpc")
		rpc["grpcPort"] = ports[2*i]
		rpc["membershipPort"] = ports[2*i+1]
		if svc == "frontend" {
			rpc["httpPort"] = ports[8]
		}
	}
	m(cfg, "clusterMetadata", "clusterInformation", "active")["rpcAddress"] = fmt.Sprintf("127.0.0.1:%d", ports[0])
	// No archival: nothing here reads it.
	cfg["archival"] = map[string]any{
		"history":    map[string]any{"state": "disabled"},
		"visibility": map[string]any{"state": "disabled"},
	}
	delete(cfg, "namespaceDefaults")

	// The module's development dynamic config, with the HTTP port of this
	// node, and search attributes visible as soon as they are registered.
	dyn, err := os.ReadFile(filepath.Join(mod.dir, "config", "dynamicconfig", "development-sql.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dynText := strings.ReplaceAll(string(dyn), "localhost:7243", fmt.Sprintf("127.0.0.1:%d", ports[8]))
	if !strings.Contains(dynText, "system.forceSearchAttributesCacheRefreshOnRead:") {
		dynText += "\nsystem.forceSearchAttributesCacheRefreshOnRead:\n  - value: true\n    constraints: {}\n"
	}
	dynPath := filepath.Join(dir, "dynamicconfig.yaml")
	if err := os.WriteFile(dynPath, []byte(dynText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg["dynamicConfigClient"] = map[string]any{"filepath": dynPath, "pollInterval": "10s"}
	cfg["log"] = map[string]any{"stdout": true, "level": "warn"}

	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "development.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}
