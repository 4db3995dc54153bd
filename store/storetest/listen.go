package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// changes collects the changes a Listen call delivers.
type changes struct {
	mu   sync.Mutex
	seen []store.Change
	wake chan struct{}
}

func listen(t *testing.T, s store.Store) *changes {
	t.Helper()
	c := &changes{wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, func(ch store.Change) {
			c.mu.Lock()
			c.seen = append(c.seen, ch)
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	return c
}

// await waits until a change matching want arrived (or one with All set).
func (c *changes) await(t *testing.T, what string, want func(store.Change) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		for _, ch := range c.seen {
			if ch.All || want(ch) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-deadline:
			t.Fatalf("no change for %s within 30s", what)
		}
	}
}

// testListen: log appends and records tell listeners about the task, events
// about the org; a listener's context ends its Listen.
func (h *harness) testListen(t *testing.T) {
	s := h.open(t)
	RunListenAcross(t, func(t *testing.T) (store.Store, store.Store) { return s, s })
}

// RunListenAcross checks that writes through one store reach the listeners
// of another on the same database (a second process): openPair returns two
// stores of one database, or the same store twice.
func RunListenAcross(t *testing.T, openPair func(t *testing.T) (writer, reader store.Store)) {
	w, r := openPair(t)
	ctx := t.Context()
	c := listen(t, r)
	prefix := randomPrefix()
	org, id := prefix+"-org", prefix+"-task"
	tk := pendingTask(id, org, baseTime)
	// The listener may need a moment to connect (a LISTEN): write until the
	// first change arrives, then check each kind once.
	deadline := time.Now().Add(30 * time.Second)
	for seq := int64(1); ; seq++ {
		if err := w.AppendLogs(ctx, GenLogs(id, "warmup", seq, 1, baseTime)); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		n := len(c.seen)
		c.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no change reached the listener within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	reset := func() {
		c.mu.Lock()
		c.seen = nil
		c.mu.Unlock()
	}
	reset()
	if err := w.AppendLogs(ctx, GenLogs(id, "logs", 1, 3, baseTime)); err != nil {
		t.Fatal(err)
	}
	c.await(t, "AppendLogs", func(ch store.Change) bool { return ch.TaskID == id })
	reset()
	other := prefix + "-task2"
	if _, err := w.RecordTransition(ctx, record(pendingTask(other, org, baseTime), 1, task.StatusPending, nil)); err != nil {
		t.Fatal(err)
	}
	c.await(t, "RecordTransition", func(ch store.Change) bool { return ch.TaskID == other })
	reset()
	ev := event(prefix+"-ev", org, id, task.EventTaskCompleted, baseTime)
	if _, err := w.RecordTransition(ctx, record(tk, 2, task.StatusCompleted, &ev)); err != nil {
		t.Fatal(err)
	}
	c.await(t, "an event", func(ch store.Change) bool { return ch.Org == org })
	reset()
	ev2 := event(prefix+"-ev2", org, id, task.EventDriftDetected, baseTime)
	if _, err := w.AppendEvent(ctx, ev2); err != nil {
		t.Fatal(err)
	}
	c.await(t, "AppendEvent", func(ch store.Change) bool { return ch.Org == org })
}
