package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// RunBenchmarks runs every benchmark of the package as sub-benchmarks, each
// on a fresh store from open (which must register Close with b.Cleanup).
func RunBenchmarks(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("ListTasksPage100k", func(b *testing.B) { BenchListTasksPage(b, open(b), 100_000) })
	b.Run("GetTask", func(b *testing.B) { BenchGetTask(b, open(b), 10_000) })
	b.Run("ListLogsByLevel100k", func(b *testing.B) { BenchListLogsByLevel(b, open(b), 100_000) })
	b.Run("AppendLogs", func(b *testing.B) { BenchAppendLogs(b, open(b)) })
	b.Run("StateOps", func(b *testing.B) { BenchStateOps(b, open(b)) })
	b.Run("TaskCounts100k", func(b *testing.B) { BenchTaskCounts(b, open(b), 100_000) })
}

// BenchStateOps measures what the state backend does per Terraform command:
// reading the latest state, taking and releasing the lock, and writing a
// new version of a 20 KB document under the lock.
func BenchStateOps(b *testing.B, s store.Store) {
	ctx := context.Background()
	const org, ws = "bench-org", "bench-ws"
	doc := make([]byte, 20<<10)
	for i := range doc {
		doc[i] = byte('a' + i%26)
	}
	if _, err := s.PutState(ctx, store.StateVersion{Org: org, Workspace: ws, Serial: 1, Lineage: "l", MD5: "seed", Size: int64(len(doc)), Data: doc}, ""); err != nil {
		b.Fatal(err)
	}
	b.Run("GetState", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetState(ctx, org, ws); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LockUnlock", func(b *testing.B) {
		for b.Loop() {
			if err := s.LockState(ctx, store.StateLock{Org: org, Workspace: ws, ID: "bench-lock", TaskID: "task-bench", Info: []byte(`{"ID":"bench-lock"}`)}); err != nil {
				b.Fatal(err)
			}
			if _, err := s.UnlockState(ctx, org, ws, "bench-lock"); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := s.LockState(ctx, store.StateLock{Org: org, Workspace: ws, ID: "bench-lock"}); err != nil {
		b.Fatal(err)
	}
	var n int64
	b.Run("PutState", func(b *testing.B) {
		for b.Loop() {
			n++
			v := store.StateVersion{Org: org, Workspace: ws, Serial: n + 1, Lineage: "l", MD5: fmt.Sprint("md5-", n), Size: int64(len(doc)), Data: doc}
			if _, err := s.PutState(ctx, v, "bench-lock"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchPageSize is the page size of the list benchmarks.
const BenchPageSize = 100

// BenchListTasksPage seeds n tasks in one org once and measures reading one
// page of BenchPageSize tasks, with its total, for several filter and sort
// combinations, at the start of the list and at its middle.
func BenchListTasksPage(b *testing.B, s store.Store, n int) {
	org := "bench-org"
	SeedTasks(b, s, GenTasks(org, n, baseTime))
	SeedTasks(b, s, GenTasks("bench-other", n/10, baseTime))
	for _, c := range []struct {
		name string
		q    store.TaskQuery
	}{
		{"created_desc", store.TaskQuery{Descending: true}},
		{"created_desc/offset_half", store.TaskQuery{Descending: true, Offset: n / 2}},
		{"updated_desc", store.TaskQuery{Sort: store.SortUpdatedAt, Descending: true}},
		{"status_asc", store.TaskQuery{Sort: store.SortStatus}},
		{"status_asc/offset_half", store.TaskQuery{Sort: store.SortStatus, Offset: n / 2}},
		{"status=running/created_desc", store.TaskQuery{Status: []task.Status{task.StatusRunning}, Descending: true}},
		{"status=running/updated_desc", store.TaskQuery{Status: []task.Status{task.StatusRunning},
			Sort: store.SortUpdatedAt, Descending: true}},
		{"status=pending,failed/created_desc", store.TaskQuery{
			Status: []task.Status{task.StatusPending, task.StatusFailed}, Descending: true}},
		{"agent/created_desc", store.TaskQuery{AgentID: "agent-3", Descending: true}},
		{"agent/updated_desc", store.TaskQuery{AgentID: "agent-3", Sort: store.SortUpdatedAt, Descending: true}},
		{"runner+status/created_desc", store.TaskQuery{RunnerID: "runner-1",
			Status: []task.Status{task.StatusRunning}, Descending: true}},
	} {
		q := c.q
		q.Org, q.Limit = org, BenchPageSize
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				page, total, err := s.ListTasks(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(page) != BenchPageSize || total <= 0 {
					b.Fatalf("page of %d, total %d", len(page), total)
				}
			}
		})
	}
}

// BenchGetTask seeds n tasks once and measures GetTask.
func BenchGetTask(b *testing.B, s store.Store, n int) {
	org := "bench-org"
	tasks := GenTasks(org, n, baseTime)
	SeedTasks(b, s, tasks)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := s.GetTask(ctx, org, tasks[i%n].ID); err != nil {
			b.Fatal(err)
		}
		i += 7919 // a prime: spread over the table
	}
}

// BenchListLogsByLevel seeds one task with n log entries (and another with
// n/10) once and measures reading a page of BenchPageSize entries filtered
// by level, from the start and from a cursor half-way.
func BenchListLogsByLevel(b *testing.B, s store.Store, n int) {
	const id = "bench-task"
	SeedLogs(b, s, GenLogs("bench-other", "s", 1, n/10, baseTime))
	SeedLogs(b, s, GenLogs(id, "run1/applying/attempt1", 1, n, baseTime))
	all, err := s.ListLogs(context.Background(), store.LogQuery{TaskID: id, AfterID: 0, Limit: n})
	if err != nil || len(all) != n {
		b.Fatalf("seeded logs: %d entries, error %v", len(all), err)
	}
	mid := all[n/2].ID
	since := all[n/2].Timestamp
	lv := func(ls ...task.Level) []task.Level { return ls }
	for _, c := range []struct {
		name string
		q    store.LogQuery
	}{
		{"error", store.LogQuery{Levels: lv(task.LevelError)}},
		{"error/after_half", store.LogQuery{Levels: lv(task.LevelError), AfterID: mid}},
		{"warn,error", store.LogQuery{Levels: lv(task.LevelWarn, task.LevelError)}},
		{"warn,error/after_half", store.LogQuery{Levels: lv(task.LevelWarn, task.LevelError), AfterID: mid}},
		{"all", store.LogQuery{}},
		{"all/after_half", store.LogQuery{AfterID: mid}},
		{"info/since_half", store.LogQuery{Levels: lv(task.LevelInfo), Since: &since}},
	} {
		q := c.q
		q.TaskID, q.Limit = id, BenchPageSize
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				page, err := s.ListLogs(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(page) != BenchPageSize {
					b.Fatalf("page of %d", len(page))
				}
			}
		})
	}
}

// benchSeq hands out unique sequence ranges to the append benchmarks.
var benchSeq atomic.Int64

// BenchAppendLogs measures appending a heartbeat flush of 100 new entries,
// re-appending a flush already stored (a retry), and appending from several
// goroutines at once.
func BenchAppendLogs(b *testing.B, s store.Store) {
	const size = 100
	template := GenLogs("bench-task", "run1/applying/attempt1", 1, size, baseTime)
	next := func(stream string) []store.LogEntry {
		first := benchSeq.Add(size) - size + 1
		batch := make([]store.LogEntry, size)
		for i := range batch {
			batch[i] = template[i]
			batch[i].Stream = stream
			batch[i].Seq = first + int64(i)
		}
		return batch
	}
	b.Run("batch100", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			if err := s.AppendLogs(ctx, next("serial")); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("batch100_retry", func(b *testing.B) {
		ctx := context.Background()
		batch := next("retry")
		if err := s.AppendLogs(ctx, batch); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := s.AppendLogs(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel_batch100", func(b *testing.B) {
		ctx := context.Background()
		var g atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			stream := fmt.Sprintf("parallel%d", g.Add(1))
			for pb.Next() {
				if err := s.AppendLogs(ctx, next(stream)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
	})
}
