package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
)

// TestAppendLogsAtomic checks an append that fails stores none of its
// entries, although the lock and the insert travel as two statements.
func TestAppendLogsAtomic(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	// Reject one entry of the batch from the database's side.
	if _, err := conn.Exec(ctx, `ALTER TABLE logs ADD CONSTRAINT no_poison CHECK (message <> 'poison')`); err != nil {
		t.Fatal(err)
	}
	batch := storetest.GenLogs("t", "s", 1, 10, time.Unix(0, 0))
	batch[7].Message = "poison"
	if err := s.AppendLogs(ctx, batch); err == nil {
		t.Fatal("AppendLogs with a rejected entry succeeded")
	}
	got, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t", Limit: 100})
	if err != nil || len(got) != 0 {
		t.Errorf("after a failed append: %d entries (error %v), want none", len(got), err)
	}
	// The store's connections are fine afterwards.
	batch[7].Message = "fine"
	if err := s.AppendLogs(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t", Limit: 100}); err != nil || len(got) != 10 {
		t.Errorf("%d entries (error %v), want 10", len(got), err)
	}
}

// TestAppendLogsSerialisedPerTask checks an append waits for the task's
// append lock, which an append in progress holds until it commits, and that
// appends to other tasks do not.
func TestAppendLogsSerialisedPerTask(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s, conn := openDSN(t, dsn), connect(t, dsn)
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, logLockClass, "a"); err != nil {
		t.Fatal(err)
	}
	other, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.AppendLogs(other, storetest.GenLogs("b", "s", 1, 5, time.Unix(0, 0))); err != nil {
		t.Fatalf("append to another task: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.AppendLogs(ctx, storetest.GenLogs("a", "s", 1, 5, time.Unix(0, 0))) }()
	select {
	case err := <-done:
		t.Fatalf("append to a task whose lock is held returned (error %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append still waiting after the lock was released")
	}
}

// TestLogCursorUnderConcurrentAppends pages through a task's logs with
// AfterID while several writers append to it: a reader must never skip an
// entry (one committed after the reader moved past its ID).
func TestLogCursorUnderConcurrentAppends(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const (
		writers = 6
		batches = 30
		size    = 100
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := s.AppendLogs(ctx, storetest.GenLogs("t", fmt.Sprint("w", w), int64(b*size+1), size, time.Unix(0, 0))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var after int64
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		page, err := s.ListLogs(ctx, store.LogQuery{TaskID: "t", AfterID: after, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen[fmt.Sprint(e.Stream, "/", e.Seq)] = true
			after = e.ID
		}
		if finished && len(page) == 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != writers*batches*size {
		t.Errorf("a reader following the cursor saw %d entries, want %d", len(seen), writers*batches*size)
	}
}
