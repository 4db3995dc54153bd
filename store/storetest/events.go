package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
		Logs: []store.LogEntry{{TaskID: t.ID, Stream: "task", Seq: n, Timestamp: at, Level: task.LevelInfo,
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
