package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/devtls"
)

// runnerProc is a `terratask runner` process.
type runnerProc struct {
	cmd     *exec.Cmd
	dataDir string
	out     *syncBuffer
	done    chan error
}

// startRunner starts a runner of id of org default against a dev instance's
// Temporal and runner API, with the org's key (never dev's secret key).
// Terraform state is on dev's state backend; stateDir would serve only a
// runner without one.
func startRunner(t *testing.T, dev *devProc, id, dataDir, stateDir string, env ...string) *runnerProc {
	t.Helper()
	// A runner holds its org's key, never the secret key: `terratask keys org`.
	key, err := exec.Command(binPath, "keys", "org", "--org", "default", "--secret-key-file", filepath.Join(dev.dataDir, "secret.key")).Output()
	if err != nil {
		t.Fatalf("terratask keys org: %v", err)
	}
	p := launchRunner(t, dev, "default", strings.TrimSpace(string(key)), id, dataDir,
		[]string{"--state-dir", stateDir, "--log-level", "warn"}, env...)
	// The host ID file appears once the runner has started.
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(dataDir, "host-id")); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner did not start:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *runnerProc) hostID(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(p.dataDir, "host-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRunnerKilledMidApplyResumesOnAnotherHost SIGKILLs the runner process
// that is applying; the other process of the same runner ID takes the task
// over after the heartbeat timeout, Terraform converges on the shared state,
// and the logs of both attempts are all there, none twice.
func TestRunnerKilledMidApplyResumesOnAnotherHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dev, err := startDev(filepath.Join(dir, "dev"), "crash-key")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	state := filepath.Join(dir, "state")
	r1 := startRunner(t, dev, "fleet", filepath.Join(dir, "r1"), state)
	r2 := startRunner(t, dev, "fleet", filepath.Join(dir, "r2"), state)
	hosts := map[string]*runnerProc{r1.hostID(t): r1, r2.hostID(t): r2}

	tk := dev.create(t, map[string]any{
		"name": "crash", "agent_id": "agent-e2e", "runner_id": "fleet",
		"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 2},
	})
	var victim *runnerProc
	var victimHost string
	dev.waitStatus(t, tk.ID, 2*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("ended before the kill: %+v", s)
		}
		if s.Metadata.CurrentStep == "applying" && s.Metadata.ChangesDone >= 1 && hosts[s.Metadata.Host] != nil {
			victim, victimHost = hosts[s.Metadata.Host], s.Metadata.Host
			return true
		}
		return false
	})
	killedAt := time.Now()
	_ = victim.cmd.Process.Kill()
	<-victim.done

	var resumedAt time.Time
	seen := dev.waitStatus(t, tk.ID, 3*time.Minute, func(s Status) bool {
		if resumedAt.IsZero() && s.Metadata.Host != "" && s.Metadata.Host != victimHost {
			resumedAt = time.Now()
		}
		return terminal(s)
	})
	if last := seen[len(seen)-1]; last.Status != "completed" || last.Progress != 100 {
		t.Fatalf("after the kill the task ended %+v\n%v", last, dev.logs(t, tk.ID, "?level=warn,error"))
	}
	if !resumedAt.IsZero() {
		t.Logf("task moved to the other host %s after the kill (heartbeat timeout 10s, host schedule-to-start 15s)", resumedAt.Sub(killedAt).Round(100*time.Millisecond))
	}
	logs := dev.logs(t, tk.ID, "?limit=10000")
	checkNoLineDoubledOrLost(t, logs)
	pickedUp := map[string]bool{}
	var all []string
	for _, l := range logs {
		if strings.HasPrefix(l.Message, "picked up by runner fleet on host ") {
			pickedUp[strings.TrimPrefix(l.Message, "picked up by runner fleet on host ")] = true
		}
		all = append(all, l.Message)
	}
	if len(pickedUp) != 2 {
		t.Fatalf("want the task picked up by both hosts, got %v", pickedUp)
	}
	text := strings.Join(all, "\n")
	if !strings.Contains(text, "step 0 done") || !strings.Contains(text, "step 3 done") {
		t.Fatalf("lines of an attempt are missing:\n%s", text)
	}
	// The state written by the dead host was read by the live one: the
	// resources it had created were not planned again.
	if got := dev.get(t, tk.ID); fmt.Sprint(got.Result.Output["steps"]) != "4" {
		t.Fatalf("outputs %v", got.Result.Output)
	}
}

// launchRunner starts `terratask runner --org org --id id` against dev's
// Temporal (its client certificate) and runner API, with key (the org's)
// in the environment, as a container would get it: task code must not read
// it from /proc (isolation_test.go). It does not wait for the runner.
func launchRunner(t *testing.T, dev *devProc, org, key, id, dataDir string, args []string, env ...string) *runnerProc {
	t.Helper()
	tlsDir := filepath.Join(dev.dataDir, devtls.DirName)
	cmd := exec.Command(binPath, append([]string{"runner", "--org", org, "--id", id,
		"--temporal-address", dev.temporal,
		"--temporal-tls-ca", filepath.Join(tlsDir, "ca.pem"), "--temporal-tls-cert", filepath.Join(tlsDir, "client.pem"),
		"--temporal-tls-key", filepath.Join(tlsDir, "client-key.pem"), "--temporal-tls-server-name", devtls.ServerName,
		// Logs, plans, the host row and Terraform state through dev's
		// runner API and state backend, as (org, ID): no store.
		"--server-url", dev.api,
		"--data-dir", dataDir}, args...)...)
	cmd.Env = append(append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "TERRATASK_SECRET_KEY="+key), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &runnerProc{cmd: cmd, dataDir: dataDir, out: out, done: make(chan error)}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}
