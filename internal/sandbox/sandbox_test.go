package sandbox

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/testbin"
)

// The test binary doubles as an engine: with helperEnv set it acts as the
// named helper instead of running tests.
const helperEnv = "TERRATASK_SANDBOX_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "wait-int":
		// Like terraform: catch SIGINT, "stop gracefully" (write a mark),
		// exit 0. Args: the mark file.
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt)
		// Written whole, then renamed: the test reads it as soon as it
		// exists.
		if err := os.WriteFile(os.Args[1]+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			os.Exit(10)
		}
		if err := os.Rename(os.Args[1]+".tmp", os.Args[1]+".ready"); err != nil {
			os.Exit(10)
		}
		select {
		case <-c:
			_ = os.WriteFile(os.Args[1], []byte("interrupted"), 0o600)
			os.Exit(0)
		case <-time.After(time.Minute):
			os.Exit(11)
		}
	case "exit":
		code, _ := strconv.Atoi(os.Args[1])
		os.Exit(code)
	}
	os.Exit(12)
}

// active returns a working strict sandbox, or fails (under CI) or skips.
func active(t *testing.T) *Sandbox {
	t.Helper()
	s, err := New(context.Background(), Options{Mode: Strict})
	if err != nil {
		testbin.SkipOrFail(t, "bubblewrap", err.Error())
	}
	return s
}

// run runs argv through a wrapper of spec, from dir, and returns its
// combined output.
func run(t *testing.T, s *Sandbox, spec Spec, dir string, env []string, argv ...string) (string, error) {
	t.Helper()
	w, err := s.Prepare(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(w, argv...)
	cmd.Dir = dir
	cmd.Env = append(env, EnvDir+"="+spec.Dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func shSpec(t *testing.T, mounts ...Mount) Spec {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	return Spec{Dir: filepath.Join(t.TempDir(), "sb"), Engine: sh, Mounts: mounts}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"strict": Strict, "AUTO": Auto, "off": Off, "": Auto} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("none"); err == nil {
		t.Error("ParseMode(none) succeeded")
	}
}

func TestStrictWithoutBubblewrapRefuses(t *testing.T) {
	_, err := New(context.Background(), Options{Mode: Strict, Bwrap: "/nonexistent/bwrap"})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("strict without bubblewrap: %v", err)
	}
	s, err := New(context.Background(), Options{Mode: Auto, Bwrap: "/nonexistent/bwrap"})
	if err != nil || s.Active() || !strings.Contains(s.Status(), "unavailable") {
		t.Fatalf("auto without bubblewrap: %v, active %v, status %q", err, s.Active(), s.Status())
	}
	if _, err := s.Prepare(Spec{}); err == nil {
		t.Fatal("an inactive sandbox prepared a wrapper")
	}
	off, err := New(context.Background(), Options{Mode: Off})
	if err != nil || off.Active() || !strings.Contains(off.Status(), "off") {
		t.Fatalf("off: %v %v %q", err, off.Active(), off.Status())
	}
}

// A sandboxed command sees its mounts and nothing else of the host: not a
// secret beside its work dir, not the host's processes, not the host's /tmp.
func TestSandboxShowsOnlyItsMounts(t *testing.T) {
	s := active(t)
	host := t.TempDir()
	work := filepath.Join(host, "work", "task-a", "config")
	other := filepath.Join(host, "work", "task-b", "config")
	ro := filepath.Join(host, "cache")
	for _, d := range []string{work, other, ro} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeT(t, filepath.Join(host, "secret.key"), "MASTER")
	writeT(t, filepath.Join(other, "plan.tfplan"), "OTHER-TASK")
	writeT(t, filepath.Join(ro, "provider"), "P")
	hostTmp := filepath.Join(os.TempDir(), "terratask-sandbox-test-"+strconv.Itoa(os.Getpid()))
	writeT(t, hostTmp, "HOST-TMP")
	t.Cleanup(func() { os.Remove(hostTmp) })

	spec := shSpec(t, Mount{Path: work, Write: true}, Mount{Path: ro}, Mount{Path: "/nonexistent-optional", Optional: true})
	script := `
cat ` + filepath.Join(host, "secret.key") + ` 2>/dev/null && echo LEAK-secret
cat ` + filepath.Join(other, "plan.tfplan") + ` 2>/dev/null && echo LEAK-other
cat ` + hostTmp + ` 2>/dev/null && echo LEAK-tmp
ls ` + filepath.Join(host, "work") + `
echo procs $(ls /proc | grep -c '^[0-9]')
echo pid $$
echo w > ` + filepath.Join(work, "out") + ` && echo wrote-work
echo w > ` + filepath.Join(ro, "provider") + ` 2>/dev/null && echo LEAK-rowrite
echo w > /usr/x 2>/dev/null && echo LEAK-usr
echo w > /tmp/mine && echo wrote-tmp
cat /etc/passwd | head -1
echo home $HOME tmp $TMPDIR task $TASK_VAR runner ${RUNNER_SECRET:-none} dir ${TERRATASK_SANDBOX_DIR:-unset}
grep CapEff /proc/self/status
`
	out, err := run(t, s, spec, work, []string{"PATH=" + Path, "TASK_VAR=mine"}, "-c", script)
	if err != nil {
		t.Fatalf("sandboxed sh: %v\n%s", err, out)
	}
	if strings.Contains(out, "LEAK") {
		t.Fatalf("the sandbox leaked:\n%s", out)
	}
	for _, want := range []string{"task-a", "wrote-work", "wrote-tmp", "pid 1", "root:x:0:0", "home " + Home + " tmp /tmp task mine runner none dir unset", "CapEff:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "task-b") {
		t.Errorf("another task's work dir is visible:\n%s", out)
	}
	// Only the shell and its own children: at most a handful of processes.
	for _, l := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(l, "procs "); ok {
			if c, _ := strconv.Atoi(n); c > 4 || c < 1 {
				t.Errorf("the sandbox sees %d processes", c)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(work, "out")); err != nil || string(b) != "w\n" {
		t.Errorf("write to the work dir did not reach the host: %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(ro, "provider")); string(b) != "P" {
		t.Errorf("read-only mount changed: %q", b)
	}
}

// A process that leaves the session and the process group (setsid, double
// fork) dies with the engine.
func TestSandboxKillsWhatOutlivesTheEngine(t *testing.T) {
	s := active(t)
	work := t.TempDir()
	marker := "terratask-sandbox-orphan-" + strconv.Itoa(os.Getpid())
	spec := shSpec(t, Mount{Path: work, Write: true})
	out, err := run(t, s, spec, work, []string{"PATH=" + Path},
		"-c", `(setsid sh -c 'echo up > `+work+`/up; sleep 300; : `+marker+`' </dev/null >/dev/null 2>&1 &) ; sleep 0.3; echo started`)
	if err != nil || !strings.Contains(out, "started") {
		t.Fatalf("%v\n%s", err, out)
	}
	// The orphan ran (before the engine ended).
	if b, err := os.ReadFile(filepath.Join(work, "up")); err != nil || string(b) != "up\n" {
		t.Fatalf("the orphan never ran: %q %v", b, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := countProcs(t, marker)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d process(es) of the sandbox outlived its engine", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countProcs(_ *testing.T, marker string) int { return testbin.CountProcs(marker) }

// Stopping a command: SIGINT to the wrapper (what terraform-exec sends)
// is ignored, Interrupt reaches the engine, which stops gracefully; the
// wrapper exits with the engine's status.
func TestSandboxForwardsInterrupt(t *testing.T) {
	s := active(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	spec := Spec{Dir: filepath.Join(t.TempDir(), "sb"), Engine: self, Mounts: []Mount{{Path: work, Write: true}}}
	w, err := s.Prepare(spec)
	if err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(work, "mark")
	cmd := exec.Command(w, mark)
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + Path, helperEnv + "=wait-int", EnvDir + "=" + spec.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(mark + ".ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the engine never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b, _ := os.ReadFile(mark + ".ready"); string(b) != "1" {
		t.Errorf("the engine's PID inside the sandbox is %s, want 1", b)
	}
	// terraform-exec's SIGINT to the process it started neither kills the
	// sandbox nor reaches the engine...
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("SIGINT to the wrapper reached the engine")
	}
	if cmd.ProcessState != nil {
		t.Fatal("SIGINT to the wrapper ended it")
	}
	// ...Interrupt does, and the engine stops gracefully.
	if n := Interrupt(spec.Dir); n != 1 {
		t.Fatalf("Interrupt signalled %d engines, want 1", n)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wrapper after Interrupt: %v", err)
	}
	if b, _ := os.ReadFile(mark); string(b) != "interrupted" {
		t.Fatalf("the engine did not see SIGINT (mark %q)", b)
	}
	// Its info file stays until the step's dir goes, but names a process
	// that is gone: Interrupt signals nothing.
	if n := Interrupt(spec.Dir); n != 0 {
		t.Fatalf("Interrupt after the engine ended signalled %d", n)
	}

	cmd = exec.Command(w, "7")
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + Path, helperEnv + "=exit", EnvDir + "=" + spec.Dir}
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("exit status through the wrapper: %v", err)
	}
}

func TestPrepareRefusesRelativePaths(t *testing.T) {
	s := active(t)
	if _, err := s.Prepare(Spec{Dir: t.TempDir(), Engine: "terraform"}); err == nil {
		t.Error("a relative engine was accepted")
	}
	if _, err := s.Prepare(Spec{Dir: t.TempDir(), Engine: "/usr/bin/true", Mounts: []Mount{{Path: "rel"}}}); err == nil {
		t.Error("a relative mount was accepted")
	}
	if _, err := s.Prepare(Spec{Dir: t.TempDir(), Engine: "/usr/bin/true", Mounts: []Mount{{Path: "/nonexistent-required"}}}); err == nil {
		t.Error("a missing required mount was accepted")
	}
}

func writeT(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
