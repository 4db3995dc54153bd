package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
)

// The log stream breaks after two entries and a status; Follow reconnects
// with the last event's ID and delivers each entry once, then the end.
func TestFollowStreamResumes(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tasks/task-1/logs" || r.URL.Query().Get("follow") != "true" || r.URL.Query().Get("level") != "info,error" {
			t.Errorf("request %s", r.URL)
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		entry := func(id int) {
			fmt.Fprintf(w, "event: log\nid: %d\ndata: {\"timestamp\":\"t%d\",\"level\":\"info\",\"message\":\"line %d\",\"metadata\":{}}\n\n", id, id, id)
		}
		switch n {
		case 1:
			entry(1)
			fmt.Fprint(w, ": keep-alive\n\n")
			entry(2)
			fmt.Fprint(w, "event: status\nid: 2:status\ndata: {\"task_id\":\"task-1\",\"status\":\"running\",\"step\":\"applying\",\"progress\":40}\n\n")
			// the connection ends without the end event
		default:
			entry(3)
			fmt.Fprint(w, "event: end\ndata: {\"task_id\":\"task-1\",\"status\":\"completed\"}\n\n")
		}
	}))
	var got []string
	var statuses []api.Status
	err := c.Follow(context.Background(), "task-1", func(e api.LogEntry) error { got = append(got, e.Message); return nil },
		client.Levels("info", "error"), client.OnStatus(func(st api.Status) { statuses = append(statuses, st) }))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "line 1,line 2,line 3" || strings.Join(lastIDs, ",") != ",2:status" {
		t.Fatalf("entries %q, Last-Event-IDs %q", got, lastIDs)
	}
	if len(statuses) != 1 || statuses[0].Status != "running" || statuses[0].Metadata["current_step"] != "applying" {
		t.Fatalf("statuses %+v", statuses)
	}
}

// A server without the stream answers follow=true with a 400 naming the
// parameter: Follow pages the logs route instead, each entry once.
func TestFollowFallsBackToPages(t *testing.T) {
	var mu sync.Mutex
	entries := []string{"a", "b", "c"}
	polls := 0
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		q := r.URL.Query()
		switch {
		case q.Has("follow"):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"bad_request","message":"unknown query parameter","details":{"parameter":"follow"}}}`)
		case strings.HasSuffix(r.URL.Path, "/status"):
			polls++
			st := "running"
			if polls == 2 {
				entries = append(entries, "d") // written while it runs
			}
			if polls >= 3 {
				st = "completed"
				entries = append(entries, "e") // the last line, just before the end
			}
			fmt.Fprintf(w, `{"id":"task-1","status":%q,"progress":50,"metadata":{}}`, st)
		default:
			// Pages of two, with the cursor (an index here).
			from := 0
			fmt.Sscan(q.Get("cursor"), &from)
			limit := 2
			var out []string
			for i := from; i < len(entries) && len(out) < limit; i++ {
				out = append(out, fmt.Sprintf(`{"timestamp":"t","level":"info","message":%q,"metadata":{}}`, entries[i]))
			}
			if len(out) == limit {
				w.Header().Set("X-Next-Cursor", fmt.Sprint(from+limit))
			}
			fmt.Fprintf(w, `{"task_id":"task-1","logs":[%s]}`, strings.Join(out, ","))
		}
	}))
	var got []string
	err := c.Follow(context.Background(), "task-1", func(e api.LogEntry) error { got = append(got, e.Message); return nil },
		client.PollInterval(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b,c,d,e" {
		t.Fatalf("entries %q", got)
	}
}
