package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// testConcurrency runs log writers, transition writers, duplicate creates and
// readers at once, as heartbeats from many runners do: no call may fail
// (SQLite's single writer must queue, not report busy), no line may be lost
// or duplicated, and every task must end in its newest state.
func (h *harness) testConcurrency(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	const (
		tasks          = 6
		logWriters     = 12 // each on its own stream
		batches        = 20
		batchSize      = 25
		transitions    = 40
		readers        = 4
		duplicateAdder = 4
	)
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = h.name("task")
		mustCreate(t, s, pendingTask(ids[i], org, baseTime))
	}

	var (
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []error
		done   = make(chan struct{})
	)
	fail := func(err error) {
		errsMu.Lock()
		errs = append(errs, err)
		errsMu.Unlock()
	}
	ctx := t.Context()

	// Log writers: every batch is flushed twice, as a retried heartbeat would.
	for w := range logWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, stream := ids[w%tasks], fmt.Sprintf("writer%d", w)
			for b := range batches {
				batch := GenLogs(id, stream, int64(b*batchSize+1), batchSize, baseTime)
				for range 2 {
					if err := s.AppendLogs(ctx, batch); err != nil {
						fail(fmt.Errorf("AppendLogs(%s, %s): %w", id, stream, err))
						return
					}
				}
			}
		}()
	}
	// Transition writers: two per task, the second replaying older
	// transitions late.
	for i := range tasks * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := ids[i%tasks]
			for k := range transitions {
				n := k + 1
				if i >= tasks {
					n = transitions - k // newest first: mostly stale
				}
				tr := store.Transition{ID: id, Status: task.StatusRunning, Progress: n * 2,
					StepsCompleted: n / 10, TotalSteps: 4, CurrentStep: task.StepApplying,
					UpdatedAt: baseTime.Add(time.Duration(n) * time.Millisecond)}
				if err := s.ApplyTransition(ctx, tr); err != nil {
					fail(fmt.Errorf("ApplyTransition(%s): %w", id, err))
					return
				}
			}
		}()
	}
	// Duplicate creates of the existing tasks.
	for range duplicateAdder {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range ids {
				if err := s.CreateTask(ctx, pendingTask(id, org, baseTime.Add(time.Hour))); err != nil {
					fail(fmt.Errorf("CreateTask(%s) again: %w", id, err))
					return
				}
			}
		}()
	}
	// Readers until the writers are done.
	var rg sync.WaitGroup
	for r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond): // readers poll; they must not starve the writers
				}
				id := ids[(r+i)%tasks]
				if _, err := s.GetTask(ctx, org, id); err != nil {
					fail(fmt.Errorf("GetTask(%s): %w", id, err))
					return
				}
				if _, _, err := s.ListTasks(ctx, store.TaskQuery{Org: org, Limit: 3, Offset: 3, Sort: store.SortUpdatedAt}); err != nil {
					fail(fmt.Errorf("ListTasks: %w", err))
					return
				}
				if _, err := s.ListLogs(ctx, store.LogQuery{TaskID: id, Levels: []task.Level{task.LevelWarn, task.LevelError}, Limit: 50}); err != nil {
					fail(fmt.Errorf("ListLogs(%s): %w", id, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		return
	}

	// Every line once; each stream in seq order.
	for ti, id := range ids {
		got := listLogs(t, s, store.LogQuery{TaskID: id, Limit: 500})
		want := 0
		for w := range logWriters {
			if w%tasks == ti {
				want += batches * batchSize
			}
		}
		if len(got) != want {
			t.Errorf("task %s: %d log entries, want %d", id, len(got), want)
		}
		next := map[string]int64{}
		seen := map[logKey]bool{}
		var last int64
		for _, e := range got {
			if seen[keyOf(e)] {
				t.Fatalf("task %s: entry %+v stored twice", id, keyOf(e))
			}
			seen[keyOf(e)] = true
			if e.ID <= last {
				t.Fatalf("task %s: IDs not increasing (%d after %d)", id, e.ID, last)
			}
			last = e.ID
			if e.Seq != next[e.Stream]+1 {
				t.Fatalf("task %s stream %s: seq %d after %d", id, e.Stream, e.Seq, next[e.Stream])
			}
			next[e.Stream] = e.Seq
		}
	}
	for _, id := range ids {
		got := mustGet(t, s, org, id)
		if got.Progress != transitions*2 || got.StepsCompleted != transitions/10 ||
			!got.UpdatedAt.Equal(us(baseTime.Add(transitions*time.Millisecond))) || got.Status != task.StatusRunning ||
			!got.CreatedAt.Equal(us(baseTime)) {
			t.Errorf("task %s after concurrent transitions: status %s progress %d steps %d updated %v created %v",
				id, got.Status, got.Progress, got.StepsCompleted, got.UpdatedAt, got.CreatedAt)
		}
	}
}
