package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// taskWriter writes a running task's history into the store the way the
// workflow (transitions, stream "task") and a runner (lines, stream
// "run1/applying/attempt1") do.
type taskWriter struct {
	t      *testing.T
	st     store.Store
	row    store.Task
	seq    int64 // the workflow's own stream
	lines  int64 // the runner's stream
	at     time.Time
	status task.Status
}

func newTaskWriter(t *testing.T, st store.Store, id, org string) *taskWriter {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &taskWriter{t: t, st: st, at: created, row: store.Task{ID: id, Org: org, Name: "n", AgentID: "agent-1", RunnerID: "local",
		Status: task.StatusPending, CreatedAt: created, UpdatedAt: created, TotalSteps: 4}}
	w.transition(task.StatusPending, "")
	return w
}

func (w *taskWriter) tick() time.Time {
	w.at = w.at.Add(time.Millisecond)
	return w.at
}

// transition records a transition with its line, as Record does.
func (w *taskWriter) transition(status task.Status, step task.Step) {
	w.t.Helper()
	w.seq++
	at := w.tick()
	level := task.LevelInfo
	if status == task.StatusFailed {
		level = task.LevelError
	}
	meta := map[string]any{"component": "workflow", "status": string(status), "progress": int(w.seq)}
	if step != "" {
		meta["step"] = string(step)
	}
	rec := store.TransitionRecord{Task: w.row,
		Transition: store.Transition{ID: w.row.ID, Status: status, CurrentStep: step, Progress: int(w.seq), UpdatedAt: at},
		Logs: []store.LogEntry{{TaskID: w.row.ID, Stream: "task", Seq: w.seq, Timestamp: at, Level: level,
			Message: fmt.Sprintf("transition %d to %s", w.seq, status), Metadata: meta}}}
	if status.Terminal() {
		rec.Transition.CompletedAt = &at
	}
	if _, err := w.st.RecordTransition(context.Background(), rec); err != nil {
		w.t.Error(err)
	}
	w.status = status
}

// logs appends n runner lines in one flush, every fifth at level warn.
func (w *taskWriter) logs(n int) {
	w.t.Helper()
	batch := make([]store.LogEntry, n)
	for i := range batch {
		w.lines++
		level := task.LevelInfo
		if w.lines%5 == 0 {
			level = task.LevelWarn
		}
		batch[i] = store.LogEntry{TaskID: w.row.ID, Stream: "run1/applying/attempt1", Seq: w.lines, Timestamp: w.tick(), Level: level,
			Message: fmt.Sprintf("line %d", w.lines), Metadata: map[string]any{"component": "terraform"}}
	}
	if err := w.st.AppendLogs(context.Background(), batch); err != nil {
		w.t.Error(err)
	}
}

// story writes a whole task: transitions, lines between them, the end.
func (w *taskWriter) story(pause time.Duration) {
	w.transition(task.StatusRunning, "")
	for _, step := range []task.Step{task.StepInstalling, task.StepInitializing, task.StepPlanning, task.StepApplying} {
		w.transition(task.StatusRunning, step)
		for range 3 {
			w.logs(7)
			time.Sleep(pause)
		}
	}
	w.transition(task.StatusCompleted, "")
}

// collected is what a follower saw.
type collected struct {
	logs     []string // messages of log events
	statuses []string
	ids      []string
	end      *api.EndEvent
}

// follow reads until the end event, or until stop says so after an event.
func follow(t *testing.T, c *sseClient, into *collected, stop func(events.SSEEvent) bool) {
	t.Helper()
	for {
		ev := c.next(t)
		switch ev.Name {
		case "log":
			var e api.LogEntry
			if err := json.Unmarshal(ev.Data, &e); err != nil {
				t.Fatal(err)
			}
			into.logs = append(into.logs, e.Message)
		case "status":
			var s api.StatusEvent
			if err := json.Unmarshal(ev.Data, &s); err != nil {
				t.Fatal(err)
			}
			into.statuses = append(into.statuses, string(s.Status)+"/"+string(s.Step))
		case "end":
			into.end = new(api.EndEvent)
			if err := json.Unmarshal(ev.Data, into.end); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Next(); err != io.EOF {
				t.Fatalf("after end: %v", err)
			}
			return
		default:
			t.Fatalf("unexpected event %q", ev.Name)
		}
		into.ids = append(into.ids, ev.ID)
		if stop != nil && stop(ev) {
			return
		}
	}
}

// allMessages is every message of the task's logs, in order.
func allMessages(t *testing.T, st store.Store, id string) []string {
	entries, err := st.ListLogs(context.Background(), store.LogQuery{TaskID: id, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Message)
	}
	return out
}

var wantStatuses = []string{"pending/", "running/", "running/installing", "running/initializing", "running/planning", "running/applying", "completed/"}

// TestFollowLogsSeesEveryLineOnceAndTheEnd follows a task while it is
// written, over real HTTP: every line once, in order, a status event per
// transition, the end event last.
func TestFollowLogsSeesEveryLineOnceAndTheEnd(t *testing.T) {
	ts := newTestServer(t, false)
	base := ts.httpServer(t)
	w := newTaskWriter(t, ts.store, "task-follow", "org-a")
	c := openSSE(t, t.Context(), base+"/api/v1/tasks/task-follow/logs?follow=true", "k-viewer-a")
	done := make(chan struct{})
	go func() { defer close(done); w.story(5 * time.Millisecond) }()
	var got collected
	follow(t, c, &got, nil)
	<-done
	if want := allMessages(t, ts.store, "task-follow"); strings.Join(got.logs, "|") != strings.Join(want, "|") {
		t.Fatalf("log events:\n%v\nwant\n%v", got.logs, want)
	}
	if fmt.Sprint(got.statuses) != fmt.Sprint(wantStatuses) {
		t.Fatalf("status events %v", got.statuses)
	}
	if got.end == nil || got.end.Status != task.StatusCompleted || got.end.TaskID != "task-follow" {
		t.Fatalf("end %+v", got.end)
	}
	// Following a task that has ended sends everything, then the end.
	var again collected
	follow(t, openSSE(t, t.Context(), base+"/api/v1/tasks/task-follow/logs", "k-viewer-a", "Accept", "text/event-stream"), &again, nil)
	if fmt.Sprint(again.logs) != fmt.Sprint(got.logs) || fmt.Sprint(again.statuses) != fmt.Sprint(got.statuses) || again.end == nil {
		t.Fatalf("second follow differs: %+v", again)
	}
}

// TestFollowLogsResumes reconnects with Last-Event-ID at every kind of
// point, mid-run: nothing is lost, nothing repeated.
func TestFollowLogsResumes(t *testing.T) {
	ts := newTestServer(t, false)
	base := ts.httpServer(t)
	w := newTaskWriter(t, ts.store, "task-resume", "org-a")
	w.transition(task.StatusRunning, "")
	w.transition(task.StatusRunning, task.StepInstalling)
	w.logs(3)
	w.transition(task.StatusRunning, task.StepInitializing)
	url := base + "/api/v1/tasks/task-resume/logs?follow=true"
	var got collected
	// 1: stop right after the log event of a transition's line, before its
	// status event.
	c := openSSE(t, t.Context(), url, "k-viewer-a")
	follow(t, c, &got, func(ev events.SSEEvent) bool {
		return ev.Name == "log" && strings.Contains(string(ev.Data), "transition 3")
	})
	c.resp.Body.Close()
	last := c.LastID()
	if strings.HasSuffix(last, statusSuffix) {
		t.Fatalf("stopped at %s", last)
	}
	// 2: resume there while the task goes on; stop after a status event.
	go func() {
		w.logs(4)
		w.transition(task.StatusRunning, task.StepPlanning)
		w.logs(2)
	}()
	c = openSSE(t, t.Context(), url, "k-viewer-a", "Last-Event-ID", last)
	follow(t, c, &got, func(ev events.SSEEvent) bool {
		return ev.Name == "status" && strings.Contains(string(ev.Data), "planning")
	})
	c.resp.Body.Close()
	last = c.LastID()
	// 3: resume by the cursor parameter (as a non-browser client may) and
	// follow to the end, written once the stream follows the task (it has
	// subscribed: what it has not read yet wakes it), after the server
	// has let the earlier streams go.
	waitFollowers(t, ts.streams.hub, 0)
	go func() {
		waitFollowers(t, ts.streams.hub, 1)
		w.transition(task.StatusRunning, task.StepApplying)
		w.logs(5)
		w.transition(task.StatusCompleted, "")
	}()
	c = openSSE(t, t.Context(), url+"&cursor="+last, "k-viewer-a")
	follow(t, c, &got, nil)
	if want := allMessages(t, ts.store, "task-resume"); strings.Join(got.logs, "|") != strings.Join(want, "|") {
		t.Fatalf("log events:\n%v\nwant\n%v", got.logs, want)
	}
	if fmt.Sprint(got.statuses) != fmt.Sprint(wantStatuses) {
		t.Fatalf("status events %v", got.statuses)
	}
	seen := map[string]bool{}
	for _, id := range got.ids {
		if seen[id] {
			t.Fatalf("event id %s seen twice: %v", id, got.ids)
		}
		seen[id] = true
	}
}

// TestFollowLogsFilters: level applies to log events, never to status
// events.
func TestFollowLogsFilters(t *testing.T) {
	ts := newTestServer(t, false)
	base := ts.httpServer(t)
	w := newTaskWriter(t, ts.store, "task-levels", "org-a")
	w.story(0)
	var got collected
	follow(t, openSSE(t, t.Context(), base+"/api/v1/tasks/task-levels/logs?follow=true&level=warn,error", "k-viewer-a"), &got, nil)
	if len(got.logs) != 16 { // 84 runner lines, every fifth a warning
		t.Fatalf("%d warnings: %v", len(got.logs), got.logs)
	}
	if fmt.Sprint(got.statuses) != fmt.Sprint(wantStatuses) || got.end == nil {
		t.Fatalf("statuses %v end %v", got.statuses, got.end)
	}
}

func TestFollowLogsBadRequests(t *testing.T) {
	ts := newTestServer(t, false)
	ts.addTask(t, store.Task{ID: "task-x", Org: "org-a", AgentID: "agent-1"})
	ts.addTask(t, store.Task{ID: "task-other-agent", Org: "org-a", AgentID: "agent-2"})
	for _, c := range []struct {
		path, key string
		header    [][2]string
		status    int
		detail    string
	}{
		{"/api/v1/tasks/task-x/logs?follow=true&limit=5", "k-viewer-a", nil, 400, "parameter=limit"},
		{"/api/v1/tasks/task-x/logs?follow=maybe", "k-viewer-a", nil, 400, "parameter=follow"},
		{"/api/v1/tasks/task-x/logs?follow=true&cursor=x", "k-viewer-a", nil, 400, "parameter=cursor"},
		{"/api/v1/tasks/task-x/logs?follow=true&level=loud", "k-viewer-a", nil, 400, "parameter=level"},
		{"/api/v1/tasks/task-x/logs?follow=true", "k-viewer-a", [][2]string{{"Last-Event-ID", "12:nope"}}, 400, "header=Last-Event-ID"},
		{"/api/v1/tasks/task-x/logs?follow=true", "k-admin-b", nil, 404, ""},
		{"/api/v1/tasks/task-other-agent/logs?follow=true", "k-agent-a", nil, 404, ""},
		{"/api/v1/tasks/task-x/logs?follow=true", "", nil, 401, ""},
	} {
		w := ts.do(t, req{method: "GET", path: c.path, key: c.key, header: c.header})
		e := decodeError(t, w)
		if w.Code != c.status {
			t.Errorf("%s: %d %s", c.path, w.Code, w.Body)
			continue
		}
		if k, v, ok := strings.Cut(c.detail, "="); ok && e.Error.Details[k] != v {
			t.Errorf("%s: details %v, want %s", c.path, e.Error.Details, c.detail)
		}
	}
	// follow=false is the plain page.
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-x/logs?follow=false", key: "k-viewer-a"}); w.Code != 200 ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("follow=false: %d %s", w.Code, w.Header())
	}
}

// TestManyFollowersShareOneListener: 100 followers of one task each get
// every line, woken by one hub (all of one key: its stream cap is raised).
func TestManyFollowersShareOneListener(t *testing.T) {
	const n = 100
	ts := newTestServer(t, false, func(o *Options) { o.MaxStreamsPerKey = n })
	base := ts.httpServer(t)
	w := newTaskWriter(t, ts.store, "task-crowd", "org-a")
	var wg sync.WaitGroup
	results := make([]collected, n)
	for i := range n {
		c := openSSE(t, t.Context(), base+"/api/v1/tasks/task-crowd/logs?follow=true", "k-viewer-a")
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(t, c, &results[i], nil)
		}()
	}
	w.story(2 * time.Millisecond)
	wg.Wait()
	want := strings.Join(allMessages(t, ts.store, "task-crowd"), "|")
	for i, r := range results {
		if strings.Join(r.logs, "|") != want || r.end == nil {
			t.Fatalf("follower %d saw %d lines (end %v)", i, len(r.logs), r.end)
		}
	}
}

// TestFollowLogsEndWaitsForTheWorkflow: lines written after the terminal
// transition (the last step's cleanup re-sending spooled lines, or a
// recovered host) come before the end event, which waits for the workflow
// to close; a workflow that closed without a terminal transition (one
// terminated in Temporal) ends the stream too.
func TestFollowLogsEndWaitsForTheWorkflow(t *testing.T) {
	ts := newTestServer(t, true)
	ts.streams.keepAlive = 50 * time.Millisecond
	base := ts.httpServer(t)
	setOpen := func(id string, open bool) {
		ts.fake.mu.Lock()
		defer ts.fake.mu.Unlock()
		if open {
			ts.fake.started[id] = client.StartWorkflowOptions{}
		} else {
			delete(ts.fake.started, id)
		}
	}
	setOpen("task-late", true)
	w := newTaskWriter(t, ts.store, "task-late", "org-a")
	w.story(0)
	c := openSSE(t, t.Context(), base+"/api/v1/tasks/task-late/logs?follow=true", "k-viewer-a")
	var got collected
	follow(t, c, &got, func(ev events.SSEEvent) bool {
		return ev.Name == "status" && strings.Contains(string(ev.Data), `"completed"`)
	})
	w.logs(2) // after the terminal transition, while the workflow runs
	last := fmt.Sprintf("line %d", w.lines)
	follow(t, c, &got, func(ev events.SSEEvent) bool { return ev.Name == "log" && strings.Contains(string(ev.Data), last) })
	if got.end != nil {
		t.Fatalf("the end event came while the workflow ran: %+v", got.end)
	}
	// The stream sent the late lines and waits: the end comes once the
	// workflow has closed.
	setOpen("task-late", false)
	follow(t, c, &got, nil)
	if n := len(got.logs); n < 2 || got.logs[n-1] != last || got.end == nil || got.end.Status != task.StatusCompleted {
		t.Fatalf("tail %v, end %+v", got.logs[max(0, len(got.logs)-3):], got.end)
	}

	// Terminated in Temporal: the store still says running.
	setOpen("task-terminated", true)
	w2 := newTaskWriter(t, ts.store, "task-terminated", "org-a")
	w2.transition(task.StatusRunning, task.StepApplying)
	c = openSSE(t, t.Context(), base+"/api/v1/tasks/task-terminated/logs?follow=true", "k-viewer-a")
	setOpen("task-terminated", false)
	var got2 collected
	follow(t, c, &got2, nil)
	if got2.end == nil || got2.end.Status != task.StatusRunning {
		t.Fatalf("end %+v", got2.end)
	}
}

// waitFollowers waits until the hub has n followers: a stream that has
// subscribed is woken by whatever is written after.
func waitFollowers(t *testing.T, h *events.Hub, n int) {
	for deadline := time.Now().Add(10 * time.Second); h.Followers() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the hub has %d followers after 10s, want %d", h.Followers(), n)
			return
		}
	}
}
