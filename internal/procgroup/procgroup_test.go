package procgroup

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withMarker returns processes whose command line contains marker.
func withMarker(t *testing.T, marker string) []int {
	t.Helper()
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range all {
		if !p.Alive() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
		if err == nil && strings.Contains(string(b), marker) {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

func TestStopEndsOrphanedDescendants(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// A unique sleep duration marks this test's processes.
	secs := fmt.Sprintf("60.%06d", rand.IntN(1_000_000))
	tr := NewTracker("PROCGROUP_TEST", secs)

	// One sleep in the background keeps the marker; the other scrubs its
	// environment but stays in the group.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("sleep %s & env -i sleep %s & wait", secs, secs))
	cmd.Env = append(os.Environ(), tr.Key+"="+tr.Value)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(withMarker(t, secs)) >= 3 }) // sh + 2 sleeps
	tr.Scan()

	// Kill only the shell, as Terraform does with a local-exec shell: its
	// children are orphaned and keep running.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := len(withMarker(t, secs)); n != 2 {
		t.Fatalf("after killing the shell %d marked processes left, want the 2 orphans", n)
	}

	start := time.Now()
	if n := tr.Stop(time.Second); n != 2 {
		t.Errorf("Stop found %d processes, want 2", n)
	}
	if left := withMarker(t, secs); len(left) != 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if n := tr.Stop(time.Second); n != 0 {
		t.Errorf("second Stop found %d processes", n)
	}
}

func TestTerminateEscalatesToKill(t *testing.T) {
	secs := fmt.Sprintf("61.%06d", rand.IntN(1_000_000))
	// The shell ignores SIGTERM, so only SIGKILL ends it.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("trap '' TERM; sleep %s; true", secs))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	waitFor(t, func() bool { return len(withMarker(t, secs)) >= 2 })
	p, err := Stat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	Terminate([]Proc{p}, 200*time.Millisecond)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("shell still running after Terminate")
	}
	_ = syscall.Kill(-p.PGID, syscall.SIGKILL) // the sleep child
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEnvIsReadOncePerProcess: a process's environment is cached by PID
// and start time, so a later scan answers from the cache, and a new process
// (even under a reused PID) is read afresh.
func TestEnvIsReadOncePerProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	secs := fmt.Sprintf("60.%06d", rand.IntN(1_000_000))
	cmd := exec.Command("sleep", secs)
	cmd.Env = append(os.Environ(), "PROCGROUP_ENV_TEST="+secs)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var p Proc
	waitFor(t, func() bool {
		var err error
		p, err = Stat(cmd.Process.Pid)
		return err == nil && p.State == 'S'
	})
	// Younger than a second: read, not cached (it may not have exec'd).
	if !p.HasEnv("PROCGROUP_ENV_TEST", secs) {
		t.Fatal("the young sleep's marker was not found")
	}
	waitFor(t, func() bool { return processAge(p) >= time.Second })
	if !p.HasEnv("PROCGROUP_ENV_TEST", secs) || p.HasEnv("PROCGROUP_ENV_TEST", "other") {
		t.Fatalf("HasEnv of the marked sleep is wrong")
	}
	if v, ok := p.Getenv("PROCGROUP_ENV_TEST"); !ok || v != secs {
		t.Fatalf("Getenv: %q %v", v, ok)
	}
	envCache.Lock()
	_, cached := envCache.m[procKey{p.PID, p.Start}]
	envCache.Unlock()
	if !cached {
		t.Fatal("the running process's environment was not cached")
	}
	// The same PID with another start time is another process.
	other := p
	other.Start++
	if other.HasEnv("PROCGROUP_ENV_TEST", secs) != true {
		// Read afresh from /proc: still this sleep's environment.
		t.Fatal("a fresh read did not find the marker")
	}
	// Once the process is gone, listing drops it from the cache.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for range 3 {
		if _, err := List(); err != nil {
			t.Fatal(err)
		}
	}
	envCache.Lock()
	_, cached = envCache.m[procKey{p.PID, p.Start}]
	envCache.Unlock()
	if cached {
		t.Fatal("an exited process's environment stayed cached")
	}
}

// TestStopReadsProcOnlyWhenNeeded: a command whose group is empty when it
// ends costs Stop no read of /proc; a thorough Stop (a failed or cancelled
// command) also finds a marked process that left the group (setsid).
func TestStopReadsProcOnlyWhenNeeded(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := Children(os.Getpid()); err != nil {
		t.Skipf("no /proc/PID/task/*/children: %v", err)
	}
	secs := fmt.Sprintf("62.%06d", rand.IntN(1_000_000))
	tr := NewTracker("PROCGROUP_TEST", secs)

	// A command that ends with its group: nothing to stop, no scan.
	cmd := exec.Command("sh", "-c", "sleep 0.3")
	cmd.Env = append(os.Environ(), tr.Key+"="+tr.Value)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { tr.Note(); return len(tr.groups) == 1 })
	if !tr.groups[cmd.Process.Pid] {
		t.Fatalf("Note recorded %v, want the shell's group %d", tr.groups, cmd.Process.Pid)
	}
	_ = cmd.Wait()
	before := lists.Load()
	if n := tr.Stop(time.Second); n != 0 {
		t.Fatalf("Stop found %d processes of a command that ended cleanly", n)
	}
	if lists.Load() != before {
		t.Fatal("Stop read /proc although the command's group was empty")
	}

	// A command whose child leaves the group and outlives it: found only
	// by a thorough Stop, which reads /proc.
	cmd = exec.Command("sh", "-c", fmt.Sprintf("setsid sleep %s & sleep 0.3", secs))
	cmd.Env = append(os.Environ(), tr.Key+"="+tr.Value)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tr.Note()
	_ = cmd.Wait()
	waitFor(t, func() bool { return len(withMarker(t, secs)) == 1 })
	tr.Thorough()
	if n := tr.Stop(time.Second); n != 1 {
		t.Errorf("a thorough Stop found %d processes, want the escaped sleep", n)
	}
	if left := withMarker(t, secs); len(left) != 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
}
