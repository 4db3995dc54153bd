package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

// openTest opens a store on a new file in tb's temporary directory.
func openTest(tb testing.TB) *Store {
	tb.Helper()
	return openPath(tb, filepath.Join(tb.TempDir(), "store.db"))
}

// openPath opens a store at path and closes it when tb ends.
func openPath(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTest(t)
		t.Cleanup(func() { checkCounts(t, s) }) // runs before Close
		return s
	})
}

func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 tasks; skipped with -short")
	}
	storetest.RunLarge(t, func(t *testing.T) store.Store { return openTest(t) }, 100_000)
}

func TestPragmas(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	for _, c := range []struct {
		pool string
		conn func() (*sql.Conn, error)
	}{
		{"write", func() (*sql.Conn, error) { return s.w.Conn(ctx) }},
		{"read", func() (*sql.Conn, error) { return s.r.Conn(ctx) }},
	} {
		// Hold several connections at once so the pool opens new ones.
		var conns []*sql.Conn
		n := 1
		if c.pool == "read" {
			n = 3
		}
		for range n {
			conn, err := c.conn()
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
		}
		for i, conn := range conns {
			for pragma, want := range map[string]string{
				"journal_mode": "wal",
				"busy_timeout": fmt.Sprint(BusyTimeoutMillis),
				"synchronous":  "1", // NORMAL
				"foreign_keys": "1",
			} {
				var got string
				if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("%s pool connection %d: PRAGMA %s: %v", c.pool, i, pragma, err)
				}
				if got != want {
					t.Errorf("%s pool connection %d: %s = %s, want %s", c.pool, i, pragma, got, want)
				}
			}
		}
		for _, conn := range conns {
			conn.Close()
		}
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO logs (task_id, stream, seq, ts, level, message) VALUES ('t', 's', 1, 0, 'info', '')`); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

func TestOpenRejectsNonFiles(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// TestTwoStoresOneFile writes to one file from two Stores at once, as two
// processes would: busy_timeout and BEGIN IMMEDIATE must make them wait for
// each other instead of failing.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, b := openPath(t, path), openPath(t, path)
	ctx := t.Context()
	if err := a.CreateTask(ctx, store.Task{ID: "t", Org: "o", CreatedAt: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				batch := storetest.GenLogs("t", fmt.Sprintf("w%d", i), int64(k*20+1), 20, time.Unix(0, 0))
				if err := s.AppendLogs(ctx, batch); err != nil {
					errs <- err
					return
				}
				if err := s.ApplyTransition(ctx, store.Transition{ID: "t", Status: task.StatusRunning,
					Progress: k, UpdatedAt: time.Unix(int64(k), 0)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	logs, err := b.ListLogs(ctx, store.LogQuery{TaskID: "t", Limit: 10000})
	if err != nil || len(logs) != 4*50*20 {
		t.Errorf("%d entries (error %v), want %d", len(logs), err, 4*50*20)
	}
}

func TestContextCancelled(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateTask(ctx, store.Task{ID: "x", Org: "o"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTask with a cancelled context: %v", err)
	}
	if _, _, err := s.ListTasks(ctx, store.TaskQuery{Org: "o", Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListTasks with a cancelled context: %v", err)
	}
	// The store still works afterwards.
	if err := s.CreateTask(t.Context(), store.Task{ID: "x", Org: "o"}); err != nil {
		t.Error(err)
	}
}

func storeOpener(b *testing.B) store.Store { return openTest(b) }

func BenchmarkListTasksPage100k(b *testing.B) {
	storetest.BenchListTasksPage(b, storeOpener(b), 100_000)
}

func BenchmarkGetTask(b *testing.B) {
	storetest.BenchGetTask(b, storeOpener(b), 10_000)
}

func BenchmarkListLogsByLevel100k(b *testing.B) {
	storetest.BenchListLogsByLevel(b, storeOpener(b), 100_000)
}

func BenchmarkStateOps(b *testing.B) {
	storetest.BenchStateOps(b, storeOpener(b))
}

func BenchmarkAppendLogs(b *testing.B) {
	storetest.BenchAppendLogs(b, storeOpener(b))
}

func BenchmarkTaskCounts100k(b *testing.B) {
	storetest.BenchTaskCounts(b, storeOpener(b), 100_000)
}

// TestListenAcrossProcesses: a second Store on the same file (another
// process, such as a runner sharing a server's store) is told about what the
// first writes, by its poll.
func TestListenAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	storetest.RunListenAcross(t, func(t *testing.T) (store.Store, store.Store) {
		return openPath(t, path), openPath(t, path)
	})
}
