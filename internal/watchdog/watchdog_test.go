package watchdog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/internal/testbin"
)

// roleEnv makes the test binary act as a runner that keeps a sandboxed
// command alive under a lease (see runnerRole).
const roleEnv = "TERRATASK_WATCHDOG_TEST_ROLE"

// markerEnv passes the runner role its marker (not in its command line,
// which count reads).
const markerEnv = "TERRATASK_WATCHDOG_TEST_MARKER"

// The test binary doubles as the watchdog (run as `<binary> watchdog`, as
// the runner runs terratask) and as a runner.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == Command {
		os.Exit(Main())
	}
	if os.Getenv(roleEnv) == "runner" {
		os.Exit(runnerRole(os.Args[1], os.Getenv(markerEnv)))
	}
	os.Exit(m.Run())
}

// runnerRole starts a watchdog and a sandboxed `sleep` (marked with marker)
// in the sandbox dir dir, arms a 600 ms lease on it and renews it every
// 100 ms, for ever: until the test freezes or kills it. It writes
// dir/ready once the command runs.
func runnerRole(dir, marker string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "runner role:", err); return 3 }
	sb, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.Strict})
	if err != nil {
		return fail(err)
	}
	w, err := New(os.Args[0], []string{Command}, os.Stderr)
	if err != nil {
		return fail(err)
	}
	cmd, err := startSleep(sb, dir, marker)
	if err != nil {
		return fail(err)
	}
	const ttl = int64(600 * time.Millisecond)
	if err := w.Arm("step1", dir, Now()+ttl); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		return fail(err)
	}
	go func() { _ = cmd.Wait() }()
	for {
		time.Sleep(100 * time.Millisecond)
		if err := w.Renew("step1", Now()+ttl); err != nil {
			return fail(err)
		}
	}
}

// startSleep runs `sh -c "sleep 300; : marker"` in a sandbox of dir.
func startSleep(sb *sandbox.Sandbox, dir, marker string) (*exec.Cmd, error) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, err
	}
	sh, _ = filepath.EvalSymlinks(sh)
	wrapper, err := sb.Prepare(sandbox.Spec{Dir: dir, Engine: sh})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(wrapper, "-c", "sleep 300; : "+marker)
	cmd.Env = []string{"PATH=" + sandbox.Path, sandbox.EnvDir + "=" + dir}
	cmd.Dir = "/"
	return cmd, cmd.Start()
}

func active(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.Strict})
	if err != nil {
		testbin.SkipOrFail(t, "bubblewrap", err.Error())
	}
	return sb
}

// count is how many processes' command lines hold marker.
func count(marker string) int { return testbin.CountProcs(marker) }

func waitGone(t *testing.T, marker string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for count(marker) > 0 {
		if time.Since(start) > within {
			t.Fatalf("the sandboxed command (%s) still runs after %s", marker, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// A frozen runner renews nothing: the watchdog, a process of its own,
// kills the sandbox when the lease runs out, though the sandbox's parent
// (the runner) is alive and bubblewrap's --die-with-parent never fires.
func TestFrozenRunnerLosesItsSandbox(t *testing.T) {
	active(t)
	dir := filepath.Join(t.TempDir(), "sb")
	marker := fmt.Sprintf("terratask-watchdog-frozen-%d", time.Now().UnixNano())
	runner := exec.Command(os.Args[0], dir)
	runner.Env = append(os.Environ(), roleEnv+"=runner", markerEnv+"="+marker)
	var out syncBuffer
	runner.Stdout, runner.Stderr = &out, &out
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = runner.Process.Signal(syscall.SIGCONT)
		_ = runner.Process.Kill()
		_ = runner.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner never started its command:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Renewed, the lease holds well past its 600 ms.
	time.Sleep(1500 * time.Millisecond)
	if count(marker) == 0 {
		t.Fatalf("the command died while its lease was renewed:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, ExpiredFile)); err == nil {
		t.Fatal("the lease expired while it was renewed")
	}
	// Freeze the runner, as a SIGSTOP, a paused VM or a stalled process
	// would: the command must die, though nothing killed the runner.
	if err := runner.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := waitGone(t, marker, 10*time.Second)
	if _, err := os.Stat(filepath.Join(dir, ExpiredFile)); err != nil {
		t.Fatalf("no expired mark: %v", err)
	}
	t.Logf("command killed %s after the freeze (lease 600 ms, renewed every 100 ms)", took.Round(10*time.Millisecond))
	// A command the frozen runner starts once it wakes is refused by the
	// wrapper: the lease is over.
	sb := active(t)
	cmd, err := startSleep(sb, dir, marker+"-late")
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 125 {
		t.Fatalf("a command started after the expiry: %v", err)
	}
}

// When the runner goes away, the watchdog reads the end of its stdin and
// kills every sandbox it watches, whatever their deadlines.
func TestRunnerGoneKillsEverything(t *testing.T) {
	sb := active(t)
	dir := filepath.Join(t.TempDir(), "sb")
	marker := fmt.Sprintf("terratask-watchdog-gone-%d", time.Now().UnixNano())
	var log syncBuffer
	w, err := New(os.Args[0], []string{Command}, &log)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := startSleep(sb, dir, marker)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := w.Arm("step1", dir, Now()+int64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for count(marker) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	// The info file appears once the sandbox runs.
	for {
		if m, _ := filepath.Glob(filepath.Join(dir, "info.*")); len(m) > 0 {
			if b, _ := os.ReadFile(m[0]); bytes.Contains(b, []byte("child-pid")) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, marker, 5*time.Second)
	if w.Alive() {
		t.Fatal("the watchdog outlived its stdin")
	}
	if !strings.Contains(log.String(), "the runner is gone") {
		t.Fatalf("the watchdog said nothing of the kill: %q", log.String())
	}
}

// The protocol: a lease is renewed only forwards, expires on time, stays
// expired, and ends with disarm; bad lines are reported, not fatal.
func TestServeDeadlines(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pr, pw := io.Pipe()
	var log syncBuffer
	done := make(chan error, 1)
	go func() { done <- Serve(pr, &log) }()
	send := func(format string, args ...any) {
		t.Helper()
		if _, err := fmt.Fprintf(pw, format+"\n", args...); err != nil {
			t.Fatal(err)
		}
	}
	expired := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, ExpiredFile))
		return err == nil
	}
	now := Now()
	send("arm a %d %s", now+int64(300*time.Millisecond), strconv.Quote(a))
	send("arm b %d %s", now+int64(time.Hour), strconv.Quote(b))
	send("renew a %d", now+int64(100*time.Millisecond)) // earlier: ignored
	send("renew a %d", now+int64(900*time.Millisecond))
	send("bogus line")
	send("arm c notanumber %s", strconv.Quote(a))
	time.Sleep(500 * time.Millisecond)
	if expired(a) {
		t.Fatal("a expired at its first deadline though renewed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !expired(a) {
		if time.Now().After(deadline) {
			t.Fatalf("a never expired:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Expired stays expired: a late renewal does not revive it.
	if err := os.Remove(filepath.Join(a, ExpiredFile)); err != nil {
		t.Fatal(err)
	}
	send("renew a %d", Now()+int64(time.Hour))
	send("disarm b")
	time.Sleep(300 * time.Millisecond)
	if expired(b) {
		t.Fatal("b expired though its deadline is an hour away")
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if expired(b) {
		t.Fatal("a disarmed step was killed at the end")
	}
	if !expired(a) {
		t.Fatal("the still-watched expired step was not marked again at the end")
	}
	for _, want := range []string{`unknown command "bogus line"`, "bad deadline", "lease of step a expired"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
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

// A runner that says nothing for StallAfter loses every sandbox, however
// long their leases: it cannot pass their state writes on any more.
func TestStalledRunnerLosesEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var log syncBuffer
	done := make(chan error, 1)
	go func() { done <- Serve(pr, &log) }()
	defer func() { _ = pw.Close(); <-done }()
	if _, err := fmt.Fprintf(pw, "arm a %d %s\n", Now()+int64(time.Hour), strconv.Quote(dir)); err != nil {
		t.Fatal(err)
	}
	expired := func() bool {
		_, err := os.Stat(filepath.Join(dir, ExpiredFile))
		return err == nil
	}
	// Alive, the runner keeps it past StallAfter.
	for end := time.Now().Add(StallAfter + time.Second); time.Now().Before(end); time.Sleep(AliveEvery) {
		if _, err := fmt.Fprintln(pw, "alive"); err != nil {
			t.Fatal(err)
		}
	}
	if expired() {
		t.Fatalf("killed though the runner was alive:\n%s", log.String())
	}
	silent := time.Now()
	for !expired() {
		if time.Since(silent) > StallAfter+2*time.Second {
			t.Fatalf("a silent runner's sandboxes were not killed:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "the runner said nothing for") {
		t.Fatalf("log: %q", log.String())
	}
}

// The whole host froze (the watchdog with it) for longer than StallAfter
// but not past the lease: the runner's silence was the freeze's, not a
// stall, so nothing is killed; a lease that ended meanwhile still is.
func TestOwnFreezeIsNoStall(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes a watchdog for 5 s")
	}
	dirs := map[string]string{}
	for _, n := range []string{"keep", "lapse"} {
		dirs[n] = filepath.Join(t.TempDir(), n)
		if err := os.MkdirAll(dirs[n], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w, err := New(os.Args[0], []string{Command}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := Now()
	if err := w.Arm("keep", dirs["keep"], now+int64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := w.Arm("lapse", dirs["lapse"], now+int64(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // read
	// Freeze the watchdog, and keep this runner silent as a frozen one
	// would be: stop the Client's keep-alives by holding its lock.
	pid := watchdogPID(t, w)
	w.mu.Lock()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		w.mu.Unlock()
		t.Fatal(err)
	}
	time.Sleep(StallAfter + time.Second)
	_ = syscall.Kill(pid, syscall.SIGCONT)
	w.mu.Unlock()
	expired := func(n string) bool {
		_, err := os.Stat(filepath.Join(dirs[n], ExpiredFile))
		return err == nil
	}
	deadline := time.Now().Add(3 * time.Second)
	for !expired("lapse") {
		if time.Now().After(deadline) {
			t.Fatal("the lease that ended during the freeze was not enforced on waking")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if expired("keep") {
		t.Fatal("a step with an hour of lease was killed after the watchdog's own freeze")
	}
}

func watchdogPID(t *testing.T, w *Client) int {
	t.Helper()
	if w.pid == 0 {
		t.Fatal("no watchdog pid")
	}
	return w.pid
}
