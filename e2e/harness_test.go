// Package e2e drives the real terratask binary: `terratask dev` processes with
// an embedded Temporal server, the real terraform binary and SQLite, spoken to
// over real HTTP.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/internal/testbin"
)

var (
	binPath string
	shared  *devProc
	// tofuPath is OpenTofu's binary, which the shared dev's runners get as
	// --tofu-path; "" when it could not be had (engine tests skip).
	tofuPath string
	// tofuErr says why tofuPath is empty.
	tofuErr error
	// mirrorErr says why the shared dev has no provider mirror (the drift
	// tests skip).
	mirrorErr error
)

// viewerKey is a viewer's key of the shared dev's org.
const viewerKey = "e2e-viewer-key"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "terratask-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "terratask")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/terratask")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building terratask:", err)
		return 1
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		fmt.Fprintln(os.Stderr, "terraform is not on PATH; the end-to-end tests need the real binary")
		return 1
	}
	dataDir, err := os.MkdirTemp("", "terratask-e2e-shared")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dataDir)
	// A viewer key next to the admin key, for the clients' role checks.
	keysFile := filepath.Join(dataDir, "keys.yaml")
	if err := os.WriteFile(keysFile, []byte("keys:\n  - {name: e2e-viewer, org: default, role: viewer, hash: \""+auth.HashKey(viewerKey)+"\"}\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// OpenTofu: the core tests run on both engines (engines_test.go).
	// The test receivers listen on loopback, which webhooks reach only
	// when listed.
	devFlags := []string{"--api-keys-file", keysFile, "--notify-allow", "127.0.0.1", "--webhook-allow", "127.0.0.1"}
	if testbin.Required() {
		// On CI every task of the suite runs sandboxed, or dev refuses to
		// start (.ci/run installs bubblewrap).
		devFlags = append(devFlags, "--isolation", "strict")
	}
	if tofuPath, tofuErr = testbin.TofuPath(); tofuErr != nil {
		if testbin.Required() {
			fmt.Fprintln(os.Stderr, "OpenTofu for the engine tests:", tofuErr)
			return 1
		}
		fmt.Fprintln(os.Stderr, "OpenTofu unavailable; the opentofu cases skip:", tofuErr)
		tofuPath = ""
	} else {
		devFlags = append(devFlags, "--tofu-path", tofuPath)
	}
	// The time provider from a filesystem mirror, for the drift tests.
	if mirror, err := testbin.ProviderMirrorPath(); err != nil {
		if testbin.Required() {
			fmt.Fprintln(os.Stderr, "the time provider for the drift tests:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "time provider unavailable; the drift tests skip:", err)
		mirrorErr = err
	} else {
		conf := filepath.Join(dataDir, "mirror.tfrc")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path = %q\n  }\n}\n", mirror)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		devFlags = append(devFlags, "--terraform-cli-config", conf)
	}
	// The suite's tests follow streams with the one admin key, in parallel
	// (TestHundredFollowers alone opens 100): past the default cap of 16.
	devFlags = append(devFlags, "--max-streams-per-key", "200")
	shared, err = startDev(dataDir, "e2e-admin-key", devFlags...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting shared terratask dev:", err)
		return 1
	}
	code := m.Run()
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping shared terratask dev:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// devProc is a running `terratask dev` process.
type devProc struct {
	cmd      *exec.Cmd
	dataDir  string
	key      string
	api      string // http://host:port
	temporal string
	ui       string
	// uiSession opens the UI's codec session (the banner's UI session).
	uiSession string
	output    *syncBuffer
	done      chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDev starts `terratask dev` on free ports and waits for its banner. It
// serves runner local only (an explicit --runner): tests of offline runners,
// and of runner processes of their own, rely on dev serving no other ID.
func startDev(dataDir, key string, extra ...string) (*devProc, error) {
	if !slices.Contains(extra, "--runner") {
		extra = append([]string{"--runner", "local"}, extra...)
	}
	return launchDev(dataDir, key, extra...)
}

// startDevOnDemand starts `terratask dev` as a user does, without --runner:
// it serves local and starts a runner for any other ID a task names.
func startDevOnDemand(dataDir, key string, extra ...string) (*devProc, error) {
	return launchDev(dataDir, key, extra...)
}

func launchDev(dataDir, key string, extra ...string) (*devProc, error) {
	args := append([]string{"dev", "--data-dir", dataDir, "--http-address", "127.0.0.1:0",
		"--temporal-address", "127.0.0.1:0", "--ui-address", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "TERRATASK_API_KEY="+key, "TF_CLI_CONFIG_FILE=/dev/null")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &devProc{cmd: cmd, dataDir: dataDir, key: key, output: logs, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			field := func(prefix string) string {
				return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), prefix))
			}
			switch t := strings.TrimSpace(line); {
			case strings.HasPrefix(t, "API:"):
				p.api = strings.TrimSuffix(field("API:"), "/api/v1/tasks")
			case strings.HasPrefix(t, "Temporal UI:"):
				p.ui = field("Temporal UI:")
			case strings.HasPrefix(t, "UI session:"):
				p.uiSession = strings.Fields(field("UI session:"))[0]
			case strings.HasPrefix(t, "Temporal:"):
				p.temporal = strings.Fields(field("Temporal:"))[0]
			case strings.HasPrefix(t, "Admin key:") && !signalled:
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case <-ready:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("terratask dev exited early: %v\n%s", err, logs.String())
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("terratask dev did not start in time\n%s", logs.String())
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *devProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("terratask dev exited with %v\n%s", err, p.output.String())
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("terratask dev did not stop within 60s of SIGTERM\n%s", p.output.String())
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *devProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}
