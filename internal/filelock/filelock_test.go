package filelock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLockExcludesOtherHolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	first, err := Acquire(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := TryAcquire(path); err != nil || l != nil {
		t.Fatalf("TryAcquire while held = %v, %v; want nil, nil", l, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire while held: %v, want deadline exceeded", err)
	}

	// A waiter gets the lock once it is released: released after the
	// waiter found it held.
	waiting := make(chan struct{})
	var once sync.Once
	tried = func() { once.Do(func() { close(waiting) }) }
	defer func() { tried = nil }()
	got := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), path)
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	select {
	case <-waiting:
	case err := <-got:
		t.Fatalf("the waiter got the lock while it was held: %v", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("waiter did not get the lock after release")
	}
	if err := first.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
}

func TestSharedHoldersCoexistAndExcludeAnExclusiveOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	first := mustHold(t)(TryAcquireShared(path))
	second := mustHold(t)(TryAcquireShared(path))
	if l, err := TryAcquire(path); err != nil || l != nil {
		t.Fatalf("TryAcquire while shared = %v, %v; want nil, nil", l, err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if l, err := TryAcquire(path); err != nil || l != nil {
		t.Fatalf("TryAcquire while one shared holder is left = %v, %v; want nil, nil", l, err)
	}
	if err := second.Release(); err != nil {
		t.Fatal(err)
	}

	excl := mustHold(t)(TryAcquire(path))
	if l, err := TryAcquireShared(path); err != nil || l != nil {
		t.Fatalf("TryAcquireShared while exclusive = %v, %v; want nil, nil", l, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := AcquireShared(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("AcquireShared while exclusive: %v, want canceled", err)
	}
	if err := excl.Release(); err != nil {
		t.Fatal(err)
	}
	l, err := AcquireShared(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestSharedAndExclusiveAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")

	other := holdInAnotherProcess(t, path, "shared")
	mine := mustHold(t)(TryAcquireShared(path))
	if l, err := TryAcquire(path); err != nil || l != nil {
		t.Fatalf("TryAcquire while another process holds it shared = %v, %v; want nil, nil", l, err)
	}
	mine.Release()
	other.release(t)
	mustHold(t)(TryAcquire(path)).Release()

	other = holdInAnotherProcess(t, path, "exclusive")
	if l, err := TryAcquireShared(path); err != nil || l != nil {
		t.Fatalf("TryAcquireShared while another process holds it exclusively = %v, %v; want nil, nil", l, err)
	}
	other.release(t)
	mustHold(t)(TryAcquireShared(path)).Release()
}

// mustHold checks that a Try call took the lock.
func mustHold(t *testing.T) func(*Lock, error) *Lock {
	return func(l *Lock, err error) *Lock {
		t.Helper()
		if err != nil || l == nil {
			t.Fatalf("lock not taken: %v, %v", l, err)
		}
		return l
	}
}

// holder is a child process (this test binary) holding a lock until its
// stdin closes.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

const helperEnv = "FILELOCK_TEST_HOLD"

func holdInAnotherProcess(t *testing.T, path, mode string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+":"+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { h.stdin.Close(); _ = h.cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return h
}

// release makes the child release its lock and exit.
func (h *holder) release(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestHelperHoldLock is the child of holdInAnotherProcess, not a test.
func TestHelperHoldLock(t *testing.T) {
	mode, path, ok := strings.Cut(os.Getenv(helperEnv), ":")
	if !ok {
		t.Skip("helper process only")
	}
	acquire := Acquire
	if mode == "shared" {
		acquire = AcquireShared
	}
	l, err := acquire(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}
