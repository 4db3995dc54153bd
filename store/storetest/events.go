package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// event returns an event of a task with a small JSON body naming it.
func event(id, org, taskID string, typ task.EventType, at time.Time) store.Event {
	return store.Event{
		ID: id, Org: org, TaskID: taskID, AgentID: "agent-" + org, RunnerID: "runner-" + org, Type: typ, OccurredAt: at,
		Body: json.RawMessage(fmt.Sprintf(`{"id":%q,"type":%q}`, id, typ)),
	}
}

// record returns the transition record of a task's n-th transition.
func record(t store.Task, n int64, status task.Status, ev *store.Event) store.TransitionRecord {
	at := t.CreatedAt.Add(time.Duration(n) * time.Second)
	return store.TransitionRecord{
		Task:       t,
		Transition: store.Transition{ID: t.ID, Status: status, Progress: int(n), UpdatedAt: at},
		Logs: []store.LogEntry{{TaskID: t.ID, Stream: "task", Seq: n, Timestamp: at, Level: store.LevelInfo,
			Message: fmt.Sprintf("transition %d", n), Metadata: map[string]any{"component": "workflow", "status": string(status)}}},
		Event: ev,
	}
}

// testRecordTransition: one call indexes the task, applies the transition,
// appends the log line and stores the event; repeating it changes nothing
// and stores nothing twice; webhooks come back only with an event.
func (h *harness) testRecordTransition(t *testing.T) {
	s, ctx := h.open(t), t.Context()
	org := h.name("org")
	tk := pendingTask(h.name("task"), org, baseTime)
	tk.AgentID = "agent-" + org
	hook := store.Webhook{ID: h.name("wh"), Org: org, URL: "https://example.com/hook", SealedSecret: []byte{1, 2, 3}, CreatedAt: baseTime}
	if err := s.CreateWebhook(ctx, hook); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}

	ev := event(h.name("ev"), org, tk.ID, task.EventTaskCreated, baseTime)
	first := record(tk, 1, task.StatusPending, &ev)
	for i := range 2 { // the second is a retried record
		hooks, err := s.RecordTransition(ctx, first)
		if err != nil {
			t.Fatalf("RecordTransition #%d: %v", i, err)
		}
		if len(hooks) != 1 || hooks[0].ID != hook.ID || !bytes.Equal(hooks[0].SealedSecret, hook.SealedSecret) {
			t.Fatalf("RecordTransition #%d webhooks: %+v", i, hooks)
		}
	}
	got := mustGet(t, s, org, tk.ID)
	if got.Status != task.StatusPending || got.Progress != 1 {
		t.Fatalf("task after the first record: %+v", got)
	}
	// No event: no webhooks read; the transition and its line are stored.
	hooks, err := s.RecordTransition(ctx, record(tk, 2, task.StatusRunning, nil))
	if err != nil || hooks != nil {
		t.Fatalf("RecordTransition without event: %v %+v", err, hooks)
	}
	ev3 := event(h.name("ev"), org, tk.ID, task.EventTaskCompleted, baseTime.Add(3*time.Second))
	if _, err := s.RecordTransition(ctx, record(tk, 3, task.StatusCompleted, &ev3)); err != nil {
		t.Fatal(err)
	}
	// A stale retry of transition 2 neither moves the task back nor adds a line.
	if _, err := s.RecordTransition(ctx, record(tk, 2, task.StatusRunning, nil)); err != nil {
		t.Fatal(err)
	}
	got = mustGet(t, s, org, tk.ID)
	if got.Status != task.StatusCompleted || got.Progress != 3 {
		t.Fatalf("task after the records: %+v", got)
	}
	logs := listLogs(t, s, store.LogQuery{TaskID: tk.ID, Limit: 100})
	if len(logs) != 3 {
		t.Fatalf("%d log lines, want 3: %+v", len(logs), logs)
	}
	evs, err := s.ListEvents(ctx, store.EventQuery{Org: org, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ID != ev.ID || evs[1].ID != ev3.ID || evs[0].Seq >= evs[1].Seq {
		t.Fatalf("events: %+v", evs)
	}
	// A record of a task whose row is missing inserts it first.
	other := pendingTask(h.name("task"), org, baseTime)
	if _, err := s.RecordTransition(ctx, record(other, 1, task.StatusRunning, nil)); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, org, other.ID); got.Status != task.StatusRunning {
		t.Fatalf("new task: %+v", got)
	}
	// An event without an ID is an error, and nothing of the record stays.
	bad := event("", org, tk.ID, task.EventTaskFailed, baseTime)
	badTask := pendingTask(h.name("task"), org, baseTime)
	if _, err := s.RecordTransition(ctx, record(badTask, 1, task.StatusPending, &bad)); err == nil {
		t.Fatal("an event without an ID was accepted")
	}
	if _, err := s.GetTask(ctx, org, badTask.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the task of a failed record was stored: %v", err)
	}
}

// testEventsList: events in seq order per org, filters, cursor, isolation,
// GetEvent and LastEventSeq.
func (h *harness) testEventsList(t *testing.T) {
	s, ctx := h.open(t), t.Context()
	orgA, orgB := h.name("org"), h.name("org")
	if seq, err := s.LastEventSeq(ctx, orgA); err != nil || seq != 0 {
		t.Fatalf("LastEventSeq of an org without events: %d %v", seq, err)
	}
	types := []task.EventType{task.EventTaskCreated, task.EventTaskRunning, task.EventTaskStep, task.EventTaskCompleted}
	var want []store.Event
	for i := range 12 {
		org := orgA
		if i%3 == 2 {
			org = orgB
		}
		e := event(h.name("ev"), org, fmt.Sprintf("%s-t%d", org, i%2), types[i%len(types)], baseTime.Add(time.Duration(i)*time.Second))
		if i%4 == 0 {
			e.AgentID = "special"
		}
		hooks, err := s.AppendEvent(ctx, e)
		if err != nil || len(hooks) != 0 {
			t.Fatalf("AppendEvent: %v %v", hooks, err)
		}
		if _, err := s.AppendEvent(ctx, e); err != nil { // once per ID
			t.Fatal(err)
		}
		if org == orgA {
			want = append(want, e)
		}
	}
	all, err := s.ListEvents(ctx, store.EventQuery{Org: orgA, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Fatalf("%d events of org A, want %d", len(all), len(want))
	}
	for i, e := range all {
		w := want[i]
		if e.ID != w.ID || e.Org != w.Org || e.TaskID != w.TaskID || e.AgentID != w.AgentID || e.RunnerID != w.RunnerID ||
			e.Type != w.Type || !e.OccurredAt.Equal(us(w.OccurredAt)) || e.OccurredAt.Location() != time.UTC {
			t.Fatalf("event %d: got %+v, want %+v", i, e, w)
		}
		if normJSON(json.RawMessage(e.Body)) == nil || jsonString(normJSON(json.RawMessage(e.Body))) != jsonString(normJSON(w.Body)) {
			t.Fatalf("event %d body %s, want %s", i, e.Body, w.Body)
		}
		if i > 0 && e.Seq <= all[i-1].Seq {
			t.Fatalf("seq not increasing: %d after %d", e.Seq, all[i-1].Seq)
		}
	}
	if last, err := s.LastEventSeq(ctx, orgA); err != nil || last != all[len(all)-1].Seq {
		t.Fatalf("LastEventSeq %d %v, want %d", last, err, all[len(all)-1].Seq)
	}
	// Paging by cursor visits each event once.
	var paged []string
	for cursor := int64(0); ; {
		page, err := s.ListEvents(ctx, store.EventQuery{Org: orgA, AfterSeq: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			paged = append(paged, e.ID)
		}
		cursor = page[len(page)-1].Seq
	}
	if len(paged) != len(want) {
		t.Fatalf("paged %d events, want %d", len(paged), len(want))
	}
	// Filters.
	check := func(q store.EventQuery, keep func(store.Event) bool) {
		t.Helper()
		q.Org, q.Limit = orgA, 100
		got, err := s.ListEvents(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var exp []string
		for _, e := range want {
			if keep(e) {
				exp = append(exp, e.ID)
			}
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(exp) {
			t.Fatalf("%+v: got %v, want %v", q, ids, exp)
		}
	}
	check(store.EventQuery{Types: []task.EventType{task.EventTaskStep, task.EventTaskCompleted, task.EventTaskStep}}, func(e store.Event) bool {
		return e.Type == task.EventTaskStep || e.Type == task.EventTaskCompleted
	})
	check(store.EventQuery{AgentID: "special"}, func(e store.Event) bool { return e.AgentID == "special" })
	check(store.EventQuery{RunnerID: "runner-" + orgA, TaskID: orgA + "-t1"}, func(e store.Event) bool { return e.TaskID == orgA+"-t1" })
	check(store.EventQuery{RunnerID: "nope"}, func(store.Event) bool { return false })
	check(store.EventQuery{AfterSeq: all[3].Seq}, func(e store.Event) bool {
		for _, a := range all[4:] {
			if a.ID == e.ID {
				return true
			}
		}
		return false
	})
	// GetEvent is per org.
	if e, err := s.GetEvent(ctx, orgA, want[0].ID); err != nil || e.ID != want[0].ID || e.Seq != all[0].Seq {
		t.Fatalf("GetEvent: %+v %v", e, err)
	}
	if _, err := s.GetEvent(ctx, orgB, want[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetEvent of another org: %v", err)
	}
	if _, err := s.ListEvents(ctx, store.EventQuery{Org: orgA}); err == nil {
		t.Fatal("ListEvents without a limit succeeded")
	}
	if _, err := s.AppendEvent(ctx, store.Event{ID: h.name("ev"), Org: orgA, Type: task.EventTaskCreated, Body: json.RawMessage("{")}); err == nil {
		t.Fatal("an event whose body is not JSON was accepted")
	}
}

// testWebhooks: create, get, list (oldest first), delete with its deliveries,
// org isolation; secrets round-trip byte for byte.
func (h *harness) testWebhooks(t *testing.T) {
	s, ctx := h.open(t), t.Context()
	orgA, orgB := h.name("org"), h.name("org")
	a1 := store.Webhook{ID: h.name("wh"), Org: orgA, URL: "https://a.example/1", Events: []task.EventType{task.EventTaskCompleted, task.EventTaskFailed},
		AgentID: "agent-1", RunnerID: "runner-1", SealedSecret: []byte{0, 0xff, 'x', 0}, CreatedAt: baseTime, CreatedBy: "admin"}
	a2 := store.Webhook{ID: h.name("wh"), Org: orgA, URL: "http://a.example/2", SealedSecret: []byte("s"), CreatedAt: baseTime.Add(time.Second)}
	b1 := store.Webhook{ID: h.name("wh"), Org: orgB, URL: "http://b.example", SealedSecret: []byte("t"), CreatedAt: baseTime}
	for _, w := range []store.Webhook{a2, a1, b1} {
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
	}
	if err := s.CreateWebhook(ctx, a1); err == nil {
		t.Fatal("a webhook ID was stored twice")
	}
	same := func(got, want store.Webhook) {
		t.Helper()
		if got.ID != want.ID || got.Org != want.Org || got.URL != want.URL || fmt.Sprint(got.Events) != fmt.Sprint(want.Events) ||
			got.AgentID != want.AgentID || got.RunnerID != want.RunnerID || !bytes.Equal(got.SealedSecret, want.SealedSecret) ||
			!got.CreatedAt.Equal(us(want.CreatedAt)) || got.CreatedBy != want.CreatedBy || len(got.Events) != len(want.Events) {
			t.Fatalf("webhook: got %+v, want %+v", got, want)
		}
	}
	got, err := s.GetWebhook(ctx, orgA, a1.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(got, a1)
	if _, err := s.GetWebhook(ctx, orgB, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWebhook of another org: %v", err)
	}
	list, err := s.ListWebhooks(ctx, orgA)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListWebhooks: %v %+v", err, list)
	}
	same(list[0], a1)
	same(list[1], a2)

	// Deliveries of a1 go with it; b1's stay.
	for i := 1; i <= 3; i++ {
		for _, w := range []store.Webhook{a1, b1} {
			d := store.Delivery{Org: w.Org, EventID: "ev-" + w.ID, EventType: task.EventTaskCompleted, TaskID: "t", Target: w.ID,
				Attempt: i, StatusCode: 500, Latency: time.Millisecond, Error: "500", At: baseTime}
			if err := s.AddDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteWebhook(ctx, orgB, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteWebhook of another org: %v", err)
	}
	if err := s.DeleteWebhook(ctx, orgA, a1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, orgA, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteWebhook: %v", err)
	}
	if _, err := s.GetWebhook(ctx, orgA, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWebhook after delete: %v", err)
	}
	for _, c := range []struct {
		org, target string
		n           int
	}{{orgA, a1.ID, 0}, {orgB, b1.ID, 3}} {
		ds, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: c.org, Target: c.target, Limit: 10})
		if err != nil || len(ds) != c.n {
			t.Fatalf("deliveries of %s after delete: %v %d, want %d", c.target, err, len(ds), c.n)
		}
	}
}

// testDeliveries: attempts are recorded, listed newest first,
// paged, filtered by event; Delivered sees a success.
func (h *harness) testDeliveries(t *testing.T) {
	s, ctx := h.open(t), t.Context()
	org := h.name("org")
	target := h.name("wh")
	evID := h.name("ev")
	ok, err := s.Delivered(ctx, org, evID, target)
	if err != nil || ok {
		t.Fatalf("Delivered before any attempt: %v %v", ok, err)
	}
	for i := 1; i <= 4; i++ {
		d := store.Delivery{Org: org, EventID: evID, EventType: task.EventTaskCompleted, TaskID: "task-1", Target: target,
			Attempt: i, StatusCode: 500, Latency: time.Duration(i) * time.Millisecond, Error: "receiver answered 500", At: baseTime.Add(time.Duration(i) * time.Second)}
		if i == 4 {
			d.StatusCode, d.Error, d.Succeeded = 200, "", true
		}
		if err := s.AddDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Another event and another target.
	if err := s.AddDelivery(ctx, store.Delivery{Org: org, EventID: h.name("ev"), EventType: task.EventTaskFailed, Target: target, Attempt: 1, At: baseTime}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDelivery(ctx, store.Delivery{Org: org, EventID: evID, EventType: task.EventTaskCompleted, Target: store.NotifyTarget, Attempt: 1, At: baseTime}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target, EventID: evID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("%d attempts, want 4: %+v", len(all), all)
	}
	for i, d := range all {
		want := 4 - i
		if d.Attempt != want || d.EventID != evID || d.TaskID != "task-1" || d.EventType != task.EventTaskCompleted ||
			d.Latency != time.Duration(want)*time.Millisecond || !d.At.Equal(us(baseTime.Add(time.Duration(want)*time.Second))) ||
			d.Succeeded != (want == 4) || (want < 4 && (d.StatusCode != 500 || d.Error == "")) {
			t.Fatalf("attempt %d: %+v", i, d)
		}
	}
	if page, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target, BeforeID: all[1].ID, Limit: 10}); err != nil ||
		len(page) != 2 || page[0].ID != all[2].ID {
		t.Fatalf("page before %d: %v %+v", all[1].ID, err, page)
	}
	if n, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target, Limit: 10}); err != nil || len(n) != 5 {
		t.Fatalf("all attempts to the target: %v %d", err, len(n))
	}
	if other, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: h.name("org"), Target: target, Limit: 10}); err != nil || len(other) != 0 {
		t.Fatalf("another org sees %d attempts (%v)", len(other), err)
	}
	if ok, err := s.Delivered(ctx, org, evID, target); err != nil || !ok {
		t.Fatalf("Delivered after a success: %v %v", ok, err)
	}
	if ok, err := s.Delivered(ctx, org, evID, store.NotifyTarget); err != nil || ok {
		t.Fatalf("Delivered to notify (failed attempt only): %v %v", ok, err)
	}
	if _, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target}); err == nil {
		t.Fatal("ListDeliveries without a limit succeeded")
	}
}

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
