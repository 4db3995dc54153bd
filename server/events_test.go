package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// addEvent stores an event of a task of org, for agent.
func (ts *testServer) addEvent(t *testing.T, org, taskID, agent string, typ task.EventType, n int) store.Event {
	t.Helper()
	at := time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC)
	ev, err := events.New(fmt.Sprintf("evt-%s-%d", taskID, n), typ, store.Task{ID: taskID, Org: org, AgentID: agent, RunnerID: "local",
		Status: task.StatusRunning, CreatedAt: at, UpdatedAt: at}, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.store.AppendEvent(t.Context(), ev); err != nil {
		t.Error(err)
	}
	return ev
}

func eventIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var evs []api.Event
	if err := json.Unmarshal(body, &evs); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// TestEventsPage: the JSON page of the org's events, filters, the agent
// binding, the cursor.
func TestEventsPage(t *testing.T) {
	ts := newTestServer(t, false)
	ts.addEvent(t, "org-a", "t1", "agent-1", task.EventTaskCreated, 1)
	ts.addEvent(t, "org-b", "t9", "agent-1", task.EventTaskCreated, 2)
	ts.addEvent(t, "org-a", "t2", "agent-2", task.EventTaskCreated, 3)
	ts.addEvent(t, "org-a", "t1", "agent-1", task.EventTaskCompleted, 4)
	ts.addEvent(t, "org-a", "t2", "agent-2", task.EventTaskFailed, 5)
	get := func(path, key string) ([]string, http.Header) {
		t.Helper()
		w := ts.do(t, req{method: "GET", path: path, key: key})
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		return eventIDs(t, w.Body.Bytes()), w.Header()
	}
	ids, h := get("/api/v1/events", "k-viewer-a")
	if fmt.Sprint(ids) != "[evt-t1-1 evt-t2-3 evt-t1-4 evt-t2-5]" {
		t.Fatalf("all: %v", ids)
	}
	ids, h2 := get("/api/v1/events?limit=2", "k-viewer-a")
	if fmt.Sprint(ids) != "[evt-t1-1 evt-t2-3]" {
		t.Fatalf("page: %v", ids)
	}
	if ids, _ = get("/api/v1/events?cursor="+h2.Get("X-Next-Cursor"), "k-viewer-a"); fmt.Sprint(ids) != "[evt-t1-4 evt-t2-5]" {
		t.Fatalf("next page: %v", ids)
	}
	if ids, h = get("/api/v1/events?cursor="+h.Get("X-Next-Cursor"), "k-viewer-a"); len(ids) != 0 || h.Get("X-Next-Cursor") == "" {
		t.Fatalf("past the end: %v %v", ids, h)
	}
	if ids, _ = get("/api/v1/events?type=task.completed,task.failed", "k-viewer-a"); fmt.Sprint(ids) != "[evt-t1-4 evt-t2-5]" {
		t.Fatalf("types: %v", ids)
	}
	if ids, _ = get("/api/v1/events?agent=agent-2", "k-viewer-a"); fmt.Sprint(ids) != "[evt-t2-3 evt-t2-5]" {
		t.Fatalf("agent: %v", ids)
	}
	if ids, _ = get("/api/v1/events?runner=other", "k-viewer-a"); len(ids) != 0 {
		t.Fatalf("runner: %v", ids)
	}
	// An agent-bound key sees its agent's events only.
	if ids, _ = get("/api/v1/events", "k-agent-a"); fmt.Sprint(ids) != "[evt-t1-1 evt-t1-4]" {
		t.Fatalf("agent key: %v", ids)
	}
	if ids, _ = get("/api/v1/events?agent=agent-2", "k-agent-a"); len(ids) != 0 {
		t.Fatalf("agent key, other agent: %v", ids)
	}
	for _, c := range []struct{ path, param string }{
		{"/api/v1/events?type=task.exploded", "type"},
		{"/api/v1/events?limit=0", "limit"},
		{"/api/v1/events?cursor=-1", "cursor"},
		{"/api/v1/events?follow=true&limit=3", "limit"},
		{"/api/v1/events?nope=1", "nope"},
		{"/api/v1/events?agent=a&agent=b", "agent"},
	} {
		w := ts.do(t, req{method: "GET", path: c.path, key: "k-viewer-a"})
		if e := decodeError(t, w); w.Code != 400 || e.Error.Details["parameter"] != c.param {
			t.Errorf("%s: %d %s", c.path, w.Code, w.Body)
		}
	}
}

// TestEventsStream follows the org's events over real HTTP: only new ones
// by default, filters, resume with Last-Event-ID, other orgs never.
func TestEventsStream(t *testing.T) {
	ts := newTestServer(t, false)
	base := ts.httpServer(t)
	ts.addEvent(t, "org-a", "old", "agent-1", task.EventTaskCreated, 0)
	c := openSSE(t, t.Context(), base+"/api/v1/events?follow=true&type=task.created,task.completed", "k-agent-a")
	all := openSSE(t, t.Context(), base+"/api/v1/events", "k-viewer-a", "Accept", "text/event-stream")
	written := make(chan struct{})
	defer func() { <-written }()
	go func() {
		defer close(written)
		for i := 1; i <= 20; i++ {
			typ := []task.EventType{task.EventTaskCreated, task.EventTaskStep, task.EventTaskCompleted}[i%3]
			ts.addEvent(t, "org-a", fmt.Sprintf("t%d", i%4), fmt.Sprintf("agent-%d", i%2), typ, i)
			ts.addEvent(t, "org-b", "tb", "agent-1", typ, 100+i)
		}
	}()
	var got []string
	for len(got) < 6 {
		ev := c.next(t)
		var body api.Event
		if err := json.Unmarshal(ev.Data, &body); err != nil || string(body.Type) != ev.Name {
			t.Fatalf("event %s: %s %v", ev.Name, ev.Data, err)
		}
		if body.Task.AgentID != "agent-1" || (body.Type != task.EventTaskCreated && body.Type != task.EventTaskCompleted) {
			t.Fatalf("filtered stream got %s", ev.Data)
		}
		got = append(got, body.ID)
	}
	// agent-1 is odd i; created when i%3 == 0, completed when i%3 == 2.
	if want := "[evt-t3-3 evt-t1-5 evt-t1-9 evt-t3-11 evt-t3-15 evt-t1-17]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The unfiltered stream, read half, then resumed.
	var ids []string
	for len(ids) < 10 {
		ids = append(ids, all.next(t).ID)
	}
	last := all.LastID()
	all.resp.Body.Close()
	resumed := openSSE(t, t.Context(), base+"/api/v1/events?follow=true", "k-viewer-a", "Last-Event-ID", last)
	var names []string
	for len(names) < 10 {
		ev := resumed.next(t)
		var body api.Event
		_ = json.Unmarshal(ev.Data, &body)
		names = append(names, body.ID)
		if body.Task.ID == "tb" || body.ID == "evt-old-0" {
			t.Fatalf("resumed stream got %s", body.ID)
		}
	}
	if names[0] != "evt-t3-11" || names[9] != "evt-t0-20" {
		t.Fatalf("resumed: %v", names)
	}
	w := ts.do(t, req{method: "GET", path: "/api/v1/events?follow=true", key: "k-viewer-a", header: [][2]string{{"Last-Event-ID", "x"}}})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["header"] != "Last-Event-ID" {
		t.Fatalf("bad Last-Event-ID: %d %s", w.Code, w.Body)
	}
}
