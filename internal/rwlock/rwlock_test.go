package rwlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// hangGuard bounds a wait that must end, so a bug fails the test instead of
// hanging it; no assertion depends on it.
const hangGuard = 10 * time.Second

func TestReadersShareWritersExclude(t *testing.T) {
	var m Mutex
	if !m.TryRLock() || !m.TryRLock() {
		t.Fatal("two readers could not share the lock")
	}
	if m.TryLock() {
		t.Fatal("writer got the lock while readers held it")
	}
	m.RUnlock()
	if m.TryLock() {
		t.Fatal("writer got the lock while a reader held it")
	}
	m.RUnlock()
	if !m.TryLock() {
		t.Fatal("writer could not take a free lock")
	}
	if m.TryRLock() || m.TryLock() {
		t.Fatal("lock taken while a writer held it")
	}
	m.Unlock()
	if !m.TryRLock() {
		t.Fatal("reader could not take a released lock")
	}
	m.RUnlock()
}

func TestWaitsEndWithTheContext(t *testing.T) {
	var m Mutex
	if !m.TryLock() {
		t.Fatal("TryLock of a free lock failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.RLock(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("RLock while written: %v, want canceled", err)
	}
	if err := m.Lock(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock while written: %v, want canceled", err)
	}
	m.Unlock()
	// The cancelled writer no longer holds readers back.
	if !m.TryRLock() {
		t.Fatal("reader kept out after the waiting writer gave up")
	}
	m.RUnlock()
}

func TestWaitingWriterKeepsNewReadersOut(t *testing.T) {
	var m Mutex
	if !m.TryRLock() {
		t.Fatal("TryRLock of a free lock failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- m.Lock(ctx) }()
	waitFor(t, &m, func() bool { return m.writersWaiting == 1 })

	if m.TryRLock() {
		t.Fatal("new reader got in ahead of a waiting writer")
	}
	readerCtx, cancelReader := context.WithCancel(context.Background())
	cancelReader()
	if err := m.RLock(readerCtx); !errors.Is(err, context.Canceled) {
		t.Fatalf("RLock behind a waiting writer: %v, want canceled", err)
	}

	m.RUnlock()
	if err := <-got; err != nil {
		t.Fatalf("writer: %v", err)
	}
	reader := make(chan error, 1)
	go func() { reader <- m.RLock(ctx) }()
	m.Unlock()
	if err := <-reader; err != nil {
		t.Fatalf("reader after the writer: %v", err)
	}
	m.RUnlock()
}

// waitFor waits until cond, called with m's state locked, holds.
func waitFor(t *testing.T, m *Mutex, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		m.mu.Lock()
		ok := cond()
		m.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}
