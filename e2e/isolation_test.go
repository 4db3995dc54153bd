package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/terratask/terratask/internal/devtls"
	"github.com/terratask/terratask/internal/testbin"
)

// The hostile-task suite (README, Isolation): a task plays a prompt-injected
// agent (testdata/hostile/hostile.sh) and looks for everything task code
// must not reach while other tasks run beside it: a task waiting for
// approval with a sensitive variable in its plan, and a task applying with
// a secret in its env. The probe prints FOUND for each hit; it must find
// nothing on a sandboxed runner, and must find things with --isolation off
// (so the probes are real).

// hostileRun is what one hostile task found.
type hostileRun struct {
	id, mark, log string
}

func randomMark(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// runHostile runs the hostile task on p's runner local and returns its log.
func runHostile(t *testing.T, p *devProc, dataDir string) hostileRun {
	t.Helper()
	return runHostileOn(t, p, "local", dataDir)
}

// runHostileOn runs the hostile task on runner, whose data dir is dataDir.
func runHostileOn(t *testing.T, p *devProc, runner, dataDir string) hostileRun {
	t.Helper()
	mark := randomMark(t)
	tk := p.create(t, map[string]any{"name": "hostile", "agent_id": "agent-hostile", "runner_id": runner,
		"parameters": map[string]any{
			"files":     fixture(t, "hostile"),
			"variables": map[string]any{"data_dir": dataDir, "mark": mark},
			"env":       map[string]string{"OWN_SECRET": "own-" + mark},
		}})
	seen := p.waitStatus(t, tk.ID, 3*time.Minute, terminal)
	log := logText(t, p, tk.ID)
	if last := seen[len(seen)-1]; last.Status != "completed" {
		t.Fatalf("the hostile task ended %s\n%s", last.Status, log)
	}
	for _, want := range []string{"PROBE-START", "OK: own env secret", "OK: work dir writable", "OK: private tmp writable", "PROBE-END"} {
		if !strings.Contains(log, want) {
			t.Fatalf("the probe did not run through (missing %q):\n%s", want, log)
		}
	}
	return hostileRun{id: tk.ID, mark: mark, log: log}
}

func (h hostileRun) found() []string {
	var out []string
	for _, l := range strings.Split(h.log, "\n") {
		if i := strings.Index(l, "FOUND: "); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

// orphans counts the host's processes whose command line holds marker.
func orphans(marker string) int { return testbin.CountProcs(marker) }

func TestHostileTaskFindsNothing(t *testing.T) {
	p := shared
	// A task waiting for approval: its plan (with a sensitive variable)
	// stays on the runner host.
	waiting := createAs(t, p, p.key, reviewBody(t, "victim-waiting", "victim-"+randomMark(t), 1, map[string]any{"approval": "required"}))
	waitWaiting(t, p, waiting.ID)
	t.Cleanup(func() { decide(t, p, p.key, waiting.ID, "reject", nil) })

	// A task applying, with a secret in its env, until it is cancelled.
	applying := p.create(t, map[string]any{"name": "victim-applying", "agent_id": "agent-victim", "runner_id": "local",
		"parameters": map[string]any{
			"files": map[string]string{"main.tf": `resource "terraform_data" "w" {
  provisioner "local-exec" {
    command = "sleep 120; echo victim-sleeper"
  }
}`},
			"env": map[string]string{"VICTIM_SECRET": "victim-env-" + randomMark(t)},
		}})
	p.waitStatus(t, applying.ID, 3*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("the victim ended early: %+v", s)
		}
		return s.Metadata.CurrentStep == "applying"
	})
	t.Cleanup(func() {
		p.call(t, http.MethodPut, "/api/v1/tasks/"+applying.ID+"/cancel", p.key, nil)
	})

	h := runHostile(t, p, p.dataDir)
	if f := h.found(); len(f) > 0 {
		t.Errorf("task code reached what it must not:\n%s", strings.Join(f, "\n"))
	}
	if !strings.Contains(h.log, "OK: sees ") {
		t.Errorf("the probe never counted processes:\n%s", h.log)
	}
	t.Logf("the probe's findings:\n%s", h.log[strings.Index(h.log, "PROBE-START"):])

	// From the host: nothing it started outlived it, it left nothing in the
	// host's /tmp, and the waiting task's plan file is private.
	deadline := time.Now().Add(10 * time.Second)
	for orphans("terratask-e2e-orphan-"+h.mark) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a process the hostile task started outlived it")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat("/tmp/terratask-e2e-" + h.mark); err == nil {
		os.Remove("/tmp/terratask-e2e-" + h.mark)
		t.Error("the hostile task wrote into the host's /tmp")
	}
	if _, err := os.Stat(filepath.Join(p.dataDir, "terratask-e2e-"+h.mark)); err == nil {
		t.Error("the hostile task wrote into the data dir")
	}
	plans, _ := filepath.Glob(filepath.Join(p.dataDir, "runners", "*", "work", waiting.ID, ".terratask", "*.tfplan"))
	if len(plans) == 0 {
		t.Errorf("the waiting task's plan file is not on the runner host (the probe had nothing to look for)")
	}
	for _, f := range plans {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("plan file %s has mode %v", f, fi.Mode().Perm())
		}
	}
}

// The same probes on a `terratask runner` process (strict isolation, its
// secret key in its environment, logs into the SQLite store) find nothing
// either: not the runner's key in /proc/<runner>/environ, not its data dir.
func TestHostileTaskOnARunnerFindsNothing(t *testing.T) {
	t.Parallel()
	id := "isolated-" + randomMark(t)
	dataDir := t.TempDir()
	startRunner(t, shared, id, dataDir, filepath.Join(t.TempDir(), "state"), "TERRATASK_ISOLATION=strict")
	h := runHostileOn(t, shared, id, dataDir)
	if f := h.found(); len(f) > 0 {
		t.Errorf("task code on a runner reached what it must not:\n%s", strings.Join(f, "\n"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for orphans("terratask-e2e-orphan-"+h.mark) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a process the hostile task started outlived it")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, f := range []string{"/tmp/terratask-e2e-" + h.mark, filepath.Join(dataDir, "terratask-e2e-"+h.mark)} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("the hostile task wrote %s on the host", f)
		}
	}
}

// Without isolation the same probes find the data dir's keys, the dev
// process's environment and the host's /tmp, and an orphan survives: the
// suite above would notice a sandbox that stopped working.
func TestHostileTaskWithIsolationOffFindsTheKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev of its own")
	}
	t.Parallel()
	dataDir := t.TempDir()
	p, err := startDev(dataDir, "e2e-isolation-off-key", "--isolation", "off")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
	})
	if !strings.Contains(p.output.String(), "ISOLATION IS OFF") {
		t.Errorf("dev did not say loudly that isolation is off:\n%s", p.output.String())
	}
	h := runHostile(t, p, dataDir)
	t.Cleanup(func() { os.Remove("/tmp/terratask-e2e-" + h.mark) })
	found := strings.Join(h.found(), "\n")
	for _, want := range []string{"readable " + filepath.Join(dataDir, "secret.key"), "secret environment in /proc/"} {
		if !strings.Contains(found, want) {
			t.Errorf("with isolation off the probe did not find %q; found:\n%s", want, found)
		}
	}
	for _, f := range []string{"/tmp/terratask-e2e-" + h.mark, filepath.Join(dataDir, "terratask-e2e-"+h.mark)} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("with isolation off the probe could not write %s: %v", f, err)
		}
	}
	// The orphan lives on: kill it.
	if n := orphans("terratask-e2e-orphan-" + h.mark); n == 0 {
		t.Error("with isolation off no orphan survived the task")
	}
	killOrphans("terratask-e2e-orphan-" + h.mark)
}

func killOrphans(marker string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(b), marker) {
			if pr, err := os.FindProcess(pid); err == nil {
				_ = pr.Kill()
			}
		}
	}
}

// Task code shares the host's network, so it reaches every port dev listens
// on. Each of the embedded Temporal's gRPC ports (the frontend and the
// internal services, found from the dev process's sockets) refuses a client
// without a certificate of dev's CA: in plain text, over TLS without a
// client certificate, and with a certificate of another CA. dev's own
// certificate works (the probes are real).
func TestTemporalRefusesClientsWithoutCertificate(t *testing.T) {
	p := shared
	ports := listeningPorts(t, p.cmd.Process.Pid)
	httpPort := p.api[strings.LastIndex(p.api, ":")+1:]
	uiPort := p.ui[strings.LastIndex(p.ui, ":")+1:]
	var grpcPorts []string
	for _, port := range ports {
		if port != httpPort && port != uiPort {
			grpcPorts = append(grpcPorts, port)
		}
	}
	// The frontend and history, matching and worker.
	if len(grpcPorts) < 4 {
		t.Fatalf("dev listens on %v; want the API, the UI and at least 4 Temporal ports", ports)
	}
	own, err := devtls.FilesIn(filepath.Join(p.dataDir, devtls.DirName)).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	foreignDir := t.TempDir()
	foreign, err := devtls.Ensure(foreignDir)
	if err != nil {
		t.Fatal(err)
	}
	foreignConf, err := foreign.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Trust dev's server, present the foreign CA's client certificate.
	foreignConf.RootCAs = own.RootCAs
	noCert := &tls.Config{RootCAs: own.RootCAs, ServerName: devtls.ServerName, MinVersion: tls.VersionTLS12}

	check := func(port string, creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient("127.0.0.1:"+port, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	answered := 0
	for _, port := range grpcPorts {
		for name, creds := range map[string]credentials.TransportCredentials{
			"plain text":               insecure.NewCredentials(),
			"no certificate":           credentials.NewTLS(noCert),
			"another CA's certificate": credentials.NewTLS(foreignConf),
		} {
			if err := check(port, creds); err == nil {
				t.Errorf("port %s answered a client with %s", port, name)
			}
		}
		// With dev's certificate the port speaks: the health service, or
		// an error from the server itself (not the handshake).
		if err := check(port, credentials.NewTLS(own)); err == nil || status.Code(err) == codes.Unimplemented {
			answered++
		}
	}
	if answered == 0 {
		t.Errorf("no Temporal port answered dev's own certificate (ports %v)", grpcPorts)
	}
}

// listeningPorts are the TCP ports process pid listens on.
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	seen := map[string]bool{}
	var ports []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			hexPort := fields[1][strings.LastIndex(fields[1], ":")+1:]
			n, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				continue
			}
			if port := strconv.FormatUint(n, 10); !seen[port] {
				seen[port] = true
				ports = append(ports, port)
			}
		}
	}
	return ports
}
