package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
	mark := randomMark(t)
	tk := p.create(t, map[string]any{"name": "hostile", "agent_id": "agent-hostile", "runner_id": "local",
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
func orphans(marker string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), marker) {
			n++
		}
	}
	return n
}

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
