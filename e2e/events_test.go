package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
)

// slowTask starts a task of the slow fixture: four resources, one after
// another, each a second of local-exec output.
func slowTask(t testing.TB, p *devProc, name, agent string) Task {
	return p.create(t, map[string]any{
		"name": name, "agent_id": agent, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 1},
	})
}

// wantTransitions checks the status events of a whole run.
func wantTransitions(t testing.TB, got []api.StatusEvent) {
	t.Helper()
	var seq []string
	for _, s := range got {
		if n := len(seq); n == 0 || seq[n-1] != string(s.Status)+"/"+string(s.Step) {
			seq = append(seq, string(s.Status)+"/"+string(s.Step))
		}
	}
	want := "pending/ running/ running/installing running/initializing running/planning running/applying completed/"
	if strings.Join(seq, " ") != want {
		t.Fatalf("status events %v, want %s", seq, want)
	}
	if last := got[len(got)-1]; last.Progress != 100 {
		t.Fatalf("last status %+v", last)
	}
}

// TestFollowTaskLogsLive follows a running task from its creation over
// real HTTP: every log line once, in order, as GET /logs has them, a
// status event per transition, the end event last. The delay from each
// Terraform line's timestamp to its arrival is logged.
func TestFollowTaskLogsLive(t *testing.T) {
	t.Parallel()
	tk := slowTask(t, shared, "follow", "agent-follow")
	f := shared.follow(t, waitCtx(t, 3*time.Minute), "/api/v1/tasks/"+tk.ID+"/logs?follow=true", "")
	var s streamed
	if !f.readUntil(t, &s, nil) {
		t.FailNow()
	}
	if s.end == nil || s.end.Status != "completed" || s.end.TaskID != tk.ID {
		t.Fatalf("end %+v", s.end)
	}
	if _, err := f.Next(); err == nil {
		t.Fatal("events after end")
	}
	sameLogs(t, s.logs, shared.logs(t, tk.ID, "?limit=10000"))
	wantTransitions(t, s.statuses)
	t.Logf("terraform line -> SSE follower (dev): median %s over %d lines", median(s.lineLags("terraform")), len(s.lineLags("terraform")))
}

// TestFollowResumesWithLastEventID disconnects a follower mid-run and
// reconnects with Last-Event-ID, twice: nothing lost, nothing repeated.
func TestFollowResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	tk := slowTask(t, shared, "resume", "agent-follow")
	path := "/api/v1/tasks/" + tk.ID + "/logs?follow=true"
	ctx := waitCtx(t, 3*time.Minute)
	var s streamed
	f := shared.follow(t, ctx, path, "")
	// Until the apply's second resource starts, then until a status event.
	f.readUntil(t, &s, func(ev events.SSEEvent) bool { return strings.Contains(string(ev.Data), "step 1 starting") })
	f.resp.Body.Close()
	f = shared.follow(t, ctx, path, f.LastID())
	f.readUntil(t, &s, func(ev events.SSEEvent) bool { return ev.Name == "status" })
	f.resp.Body.Close()
	if s.end == nil {
		f = shared.follow(t, ctx, path, f.LastID())
		if !f.readUntil(t, &s, nil) {
			t.FailNow()
		}
	}
	sameLogs(t, s.logs, shared.logs(t, tk.ID, "?limit=10000"))
	wantTransitions(t, s.statuses)
	seen := map[string]bool{}
	for _, id := range s.ids {
		if seen[id] {
			t.Fatalf("event %s twice", id)
		}
		seen[id] = true
	}
}

// TestHundredFollowers: 100 followers of one task on dev each get every
// line once and the end.
func TestHundredFollowers(t *testing.T) {
	t.Parallel()
	tk := slowTask(t, shared, "crowd", "agent-follow")
	ctx := waitCtx(t, 4*time.Minute)
	const n = 100
	results := make([]streamed, n)
	var wg sync.WaitGroup
	for i := range n {
		f := shared.follow(t, ctx, "/api/v1/tasks/"+tk.ID+"/logs?follow=true", "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.readUntil(t, &results[i], nil)
		}()
	}
	wg.Wait()
	want := shared.logs(t, tk.ID, "?limit=10000")
	var lags []time.Duration
	for i := range results {
		if results[i].end == nil {
			t.Fatalf("follower %d got no end after %d lines", i, len(results[i].logs))
		}
		sameLogs(t, results[i].logs, want)
		lags = append(lags, results[i].lineLags("terraform")...)
	}
	t.Logf("100 followers: terraform line -> follower median %s", median(lags))
}

// TestEventsStreamOfTheOrg follows GET /events (filtered by agent) while a
// task runs: its events arrive in order, each named by its type.
func TestEventsStreamOfTheOrg(t *testing.T) {
	t.Parallel()
	agent := fmt.Sprintf("agent-events-%d", time.Now().UnixNano())
	f := shared.follow(t, waitCtx(t, 3*time.Minute), "/api/v1/events?follow=true&agent="+agent, "")
	tk := shared.create(t, map[string]any{"name": "events", "agent_id": agent, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five")}})
	var types []string
	for len(types) == 0 || types[len(types)-1] != "task.completed" {
		ev, err := f.Next()
		if err != nil {
			t.Fatalf("after %v: %v", types, err)
		}
		var body api.Event
		if err := json.Unmarshal(ev.Data, &body); err != nil || string(body.Type) != ev.Name || body.Task == nil || body.Task.ID != tk.ID {
			t.Fatalf("event %s: %s", ev.Name, ev.Data)
		}
		types = append(types, ev.Name)
	}
	if got := strings.Join(types, " "); got != "task.created task.running task.step task.step task.step task.step task.completed" {
		t.Fatalf("events %s", got)
	}
	// The page form has them too, oldest first.
	r := shared.call(t, http.MethodGet, "/api/v1/events?agent="+agent, shared.key, nil)
	if r.code != 200 || len(r.array(t)) != 7 || r.header.Get("X-Next-Cursor") == "" {
		t.Fatalf("events page: %d %s", r.code, r.body)
	}
}
