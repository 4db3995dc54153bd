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
