package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
)

// follower is an SSE client of the real server.
type follower struct {
	resp *http.Response
	*events.SSEReader
}

// follow opens a stream of path (follow=true is the caller's) with the
// given Last-Event-ID ("" for none).
func (p *devProc) follow(t testing.TB, ctx context.Context, path, lastID string) *follower {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.api+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "UserKey "+p.key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &follower{resp: resp, SSEReader: events.NewSSEReader(resp.Body)}
}

// streamed is what a follower of a task's logs received.
type streamed struct {
	logs     []api.LogEntry
	received []time.Time // when each log event arrived
	statuses []api.StatusEvent
	ids      []string
	end      *api.EndEvent
}

// readUntil reads events into s until the end event (true) or until stop
// returns true after an event (false). A stream that breaks fails t.
func (f *follower) readUntil(t testing.TB, s *streamed, stop func(events.SSEEvent) bool) bool {
	t.Helper()
	for {
		ev, err := f.Next()
		if err != nil {
			t.Errorf("stream broke after %d log events: %v", len(s.logs), err)
			return false
		}
		switch ev.Name {
		case "log":
			var e api.LogEntry
			if err := json.Unmarshal(ev.Data, &e); err != nil {
				t.Errorf("log event %s: %v", ev.Data, err)
				return false
			}
			s.logs = append(s.logs, e)
			s.received = append(s.received, time.Now())
		case "status":
			var st api.StatusEvent
			if err := json.Unmarshal(ev.Data, &st); err != nil {
				t.Errorf("status event %s: %v", ev.Data, err)
				return false
			}
			s.statuses = append(s.statuses, st)
		case "end":
			s.end = new(api.EndEvent)
			_ = json.Unmarshal(ev.Data, s.end)
			return true
		default:
			t.Errorf("unexpected event %q", ev.Name)
			return false
		}
		s.ids = append(s.ids, ev.ID)
		if stop != nil && stop(ev) {
			return false
		}
	}
}

// sameLogs checks a stream's log events are the task's log entries, each
// once, in order.
func sameLogs(t testing.TB, got []api.LogEntry, want []LogEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d log events, the task has %d entries", len(got), len(want))
	}
	for i := range want {
		if got[i].Message != want[i].Message || got[i].Timestamp != want[i].Timestamp || string(got[i].Level) != want[i].Level {
			t.Fatalf("log event %d: %+v, entry %+v", i, got[i], want[i])
		}
	}
}

// median of durations.
func median[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := append([]T(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// lineLags are the delays from each line's stored timestamp to its arrival.
func (s *streamed) lineLags(component string) []time.Duration {
	var out []time.Duration
	for i, e := range s.logs {
		var meta struct {
			Component string `json:"component"`
		}
		_ = json.Unmarshal(e.Metadata, &meta)
		if ts, err := time.Parse(time.RFC3339Nano, e.Timestamp); err == nil && (component == "" || meta.Component == component) {
			out = append(out, s.received[i].Sub(ts))
		}
	}
	return out
}

// hookServer is a real local webhook receiver. It verifies every delivery
// with its secret (the ping too, when the secret is known up front), and
// answers what respond says.
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	secret  []byte
	got     []delivery
	respond func(ev api.Event, nth int) int // nth: how often this event came, from 1
	counts  map[string]int
	hang    chan struct{} // when set, every request waits for it to close
	waiting int           // requests waiting on hang
}

// delivery is one request the receiver got.
type delivery struct {
	ev       api.Event
	raw      []byte
	header   http.Header
	at       time.Time
	verified error
	status   int
}

func newHookServer(t testing.TB, secret string) *hookServer {
	h := &hookServer{secret: []byte(secret), counts: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.mu.Lock()
		if h.hang != nil {
			select {
			case <-h.hang:
			default:
				close(h.hang)
			}
		}
		h.mu.Unlock()
		h.Close()
	})
	return h
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	at := time.Now()
	h.mu.Lock()
	hang := h.hang
	if hang != nil {
		h.waiting++
	}
	h.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		h.mu.Lock()
		h.waiting--
		h.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d := delivery{raw: raw, header: r.Header.Clone(), at: at, status: http.StatusOK}
	if err := json.Unmarshal(raw, &d.ev); err != nil {
		d.status = http.StatusBadRequest
	}
	d.verified = events.Verify(h.secret, r.Header.Get(events.HeaderSignature), raw, time.Now(), 0)
	h.counts[d.ev.ID]++
	if h.respond != nil && d.status == http.StatusOK {
		d.status = h.respond(d.ev, h.counts[d.ev.ID])
	}
	h.got = append(h.got, d)
	w.WriteHeader(d.status)
}

// deliveries returns the requests so far.
func (h *hookServer) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.got...)
}

// accepted returns the events answered with a 2xx, in order of arrival.
func (h *hookServer) accepted(taskID string) []delivery {
	var out []delivery
	for _, d := range h.deliveries() {
		if d.status/100 == 2 && d.ev.Task != nil && d.ev.Task.ID == taskID {
			out = append(out, d)
		}
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
