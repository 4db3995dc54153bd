package storetest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TaskBatchCreator is implemented by stores that can insert many tasks in one
// transaction. SeedTasks uses it when available.
type TaskBatchCreator interface {
	CreateTasks(ctx context.Context, tasks []store.Task) error
}

// Generated data shapes: GenTasks spreads tasks over these agents and
// runners, and over every status.
const (
	GenAgents  = 10
	GenRunners = 4
)

// mix is a 64-bit mixing function (a bijection), used to derive varied but
// reproducible attributes from an index.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// GenStatuses are the statuses GenTasks cycles over: a fixed list, so the
// generated rows (and the tests that pick rows of them) stay the same when
// task.Statuses grows.
var GenStatuses = []task.Status{task.StatusPending, task.StatusRunning, task.StatusCancelling,
	task.StatusCompleted, task.StatusFailed, task.StatusCancelled}

// GenTasks returns n reproducible tasks of org whose sort keys tie a lot, so
// lists must break ties by ID: created_at advances one second every 8 tasks,
// updated_at is created_at plus 0..4 minutes, statuses cycle pseudo-randomly
// over GenStatuses, and the IDs (org-prefixed hex) sort in an order
// unrelated to creation. Agents are "agent-0".."agent-9" and runners
// "runner-0".."runner-3".
func GenTasks(org string, n int, base time.Time) []store.Task {
	tasks := make([]store.Task, n)
	for i := range tasks {
		h := mix(uint64(i))
		created := base.Add(time.Duration(i/8) * time.Second)
		updated := created.Add(time.Duration(h%5) * time.Minute)
		status := GenStatuses[(h>>8)%uint64(len(GenStatuses))]
		tk := store.Task{
			ID:          fmt.Sprintf("%s-%016x", org, h),
			Org:         org,
			Name:        fmt.Sprintf("task %d", i),
			Description: "generated",
			AgentID:     fmt.Sprintf("agent-%d", (h>>16)%GenAgents),
			RunnerID:    fmt.Sprintf("runner-%d", (h>>24)%GenRunners),
			Status:      status,
			Metadata:    map[string]any{"i": i, "env": "bench"},
			TotalSteps:  4,
			CreatedAt:   created,
			UpdatedAt:   updated,
		}
		if status != task.StatusPending {
			tk.StartedAt = ptr(created.Add(time.Second))
			tk.CurrentStep = task.StepPlanning
			tk.StepsCompleted = 2
			tk.Progress = 40
		}
		if status.Terminal() {
			tk.CompletedAt = ptr(updated)
			tk.StepsCompleted = 4
			tk.Progress = 100
			if status == task.StatusFailed {
				tk.Progress = 80
				tk.Result = &task.Result{Error: &task.Error{Code: task.CodeTerraform, Message: "apply failed"}}
			} else {
				tk.Result = &task.Result{Output: map[string]any{"n": i}}
			}
		}
		tasks[i] = tk
	}
	return tasks
}

// SeedTasks stores tasks: in batches through TaskBatchCreator when s has it,
// else through CreateTask from several goroutines.
func SeedTasks(tb testing.TB, s store.Store, tasks []store.Task) {
	tb.Helper()
	ctx := context.Background()
	if bc, ok := s.(TaskBatchCreator); ok {
		const batch = 25000
		for start := 0; start < len(tasks); start += batch {
			if err := bc.CreateTasks(ctx, tasks[start:min(start+batch, len(tasks))]); err != nil {
				tb.Fatalf("CreateTasks: %v", err)
			}
		}
		return
	}
	const workers = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(tasks); i += workers {
				if err := s.CreateTask(ctx, tasks[i]); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatalf("CreateTask: %v", firstErr)
	}
}

// GenLogs returns n reproducible log entries of taskID on stream, with Seq
// from firstSeq, one millisecond apart from base. Levels are skewed like real
// Terraform output: about 55% debug, 30% info, 10% warn and 5% error.
func GenLogs(taskID, stream string, firstSeq int64, n int, base time.Time) []store.LogEntry {
	entries := make([]store.LogEntry, n)
	for i := range entries {
		seq := firstSeq + int64(i)
		h := mix(uint64(seq) ^ 0x5bd1e995)
		var level task.Level
		switch r := h % 100; {
		case r < 55:
			level = task.LevelDebug
		case r < 85:
			level = task.LevelInfo
		case r < 95:
			level = task.LevelWarn
		default:
			level = task.LevelError
		}
		entries[i] = store.LogEntry{
			TaskID:    taskID,
			Stream:    stream,
			Seq:       seq,
			Timestamp: base.Add(time.Duration(seq) * time.Millisecond),
			Level:     level,
			Message:   fmt.Sprintf("aws_instance.web[%d]: Still creating... [%ds elapsed]", h%16, seq%600),
			Metadata: map[string]any{
				"component": "terraform",
				"step":      "applying",
				"attempt":   1,
				"address":   fmt.Sprintf("aws_instance.web[%d]", h%16),
			},
		}
	}
	return entries
}

// SeedLogs appends entries in batches of 1000 (a generous heartbeat flush).
func SeedLogs(tb testing.TB, s store.Store, entries []store.LogEntry) {
	tb.Helper()
	const batch = 1000
	for start := 0; start < len(entries); start += batch {
		if err := s.AppendLogs(context.Background(), entries[start:min(start+batch, len(entries))]); err != nil {
			tb.Fatalf("AppendLogs: %v", err)
		}
	}
}

// Expect returns the IDs of tasks that q selects, in q's order, ignoring Limit
// and Offset: the reference the suite compares stores with.
func Expect(tasks []store.Task, q store.TaskQuery) []string {
	var sel []store.Task
	for _, t := range tasks {
		if matches(t, q) {
			sel = append(sel, t)
		}
	}
	sort.Slice(sel, func(i, j int) bool {
		c := compareBy(sel[i], sel[j], q.Sort)
		if c == 0 {
			c = strings.Compare(sel[i].ID, sel[j].ID)
		}
		if q.Descending {
			return c > 0
		}
		return c < 0
	})
	ids := make([]string, len(sel))
	for i, t := range sel {
		ids[i] = t.ID
	}
	return ids
}

// matches reports whether q's filters select t.
func matches(t store.Task, q store.TaskQuery) bool {
	if t.Org != q.Org {
		return false
	}
	if len(q.Status) > 0 {
		found := false
		for _, st := range q.Status {
			found = found || st == t.Status
		}
		if !found {
			return false
		}
	}
	return (q.AgentID == "" || q.AgentID == t.AgentID) && (q.RunnerID == "" || q.RunnerID == t.RunnerID)
}

// compareBy compares two tasks on a sort field, at stored (microsecond)
// precision.
func compareBy(a, b store.Task, f store.SortField) int {
	switch f {
	case store.SortUpdatedAt:
		return us(a.UpdatedAt).Compare(us(b.UpdatedAt))
	case store.SortStatus:
		return strings.Compare(string(a.Status), string(b.Status))
	default:
		return us(a.CreatedAt).Compare(us(b.CreatedAt))
	}
}
