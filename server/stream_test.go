package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// sseClient is a follower over real HTTP.
type sseClient struct {
	resp *http.Response
	*events.SSEReader
}

func (ts *testServer) httpServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(func() {
		ts.CloseStreams()
		srv.Close()
	})
	return srv.URL
}

func openSSE(t testing.TB, ctx context.Context, url, key string, header ...string) *sseClient {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "UserKey "+key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &sseClient{resp: resp, SSEReader: events.NewSSEReader(resp.Body)}
}

// next reads the next event, failing the test at the end of the stream.
func (c *sseClient) next(t testing.TB) events.SSEEvent {
	t.Helper()
	ev, err := c.Next()
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return ev
}

// keepAliveWatch passes a stream's body through, counting the comment
// lines (keep-alives) in it; seen is closed once it has counted want.
type keepAliveWatch struct {
	r     io.Reader
	want  int
	count int
	prev  byte
	seen  chan struct{}
}

func watchKeepAlives(r io.Reader, want int) *keepAliveWatch {
	return &keepAliveWatch{r: r, want: want, prev: '\n', seen: make(chan struct{})}
}

func (k *keepAliveWatch) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	for _, b := range p[:n] {
		if b == ':' && k.prev == '\n' {
			if k.count++; k.count == k.want {
				close(k.seen)
			}
		}
		k.prev = b
	}
	return n, err
}

// TestStreamsKeepAliveAndEndAtShutdown: an idle stream gets keep-alive
// comments, and CloseStreams ends it (without an end event) at once.
func TestStreamsKeepAliveAndEndAtShutdown(t *testing.T) {
	ts := newTestServer(t, true)
	ts.fake.started["task-idle"] = client.StartWorkflowOptions{} // its workflow runs
	ts.streams.keepAlive = 30 * time.Millisecond
	base := ts.httpServer(t)
	newTaskWriter(t, ts.store, "task-idle", "org-a").transition(task.StatusRunning, "")
	// Each stream is read to its end by a goroutine of its own, through a
	// watch of its keep-alives.
	type result struct {
		events []string
		err    error
	}
	var watches []*keepAliveWatch
	var results []chan result
	for _, path := range []string{"/api/v1/tasks/task-idle/logs?follow=true", "/api/v1/events?follow=true"} {
		c := openSSE(t, t.Context(), base+path, "k-viewer-a")
		w := watchKeepAlives(c.resp.Body, 2)
		c.SSEReader = events.NewSSEReader(w)
		done := make(chan result, 1)
		go func() {
			var r result
			for {
				ev, err := c.Next()
				if err != nil {
					if err != io.EOF {
						r.err = err
					}
					done <- r
					return
				}
				r.events = append(r.events, ev.Name)
			}
		}()
		watches, results = append(watches, w), append(results, done)
	}
	for i, w := range watches {
		select {
		case <-w.seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("stream %d: fewer than 2 keep-alives within 10s of idling", i)
		}
	}
	start := time.Now()
	go ts.CloseStreams()
	var got []result
	for _, done := range results {
		select {
		case r := <-done:
			got = append(got, r)
		case <-time.After(10 * time.Second):
			t.Fatal("a stream outlived CloseStreams by 10s")
		}
	}
	if got[0].err != nil || got[1].err != nil {
		t.Fatalf("streams ended with %v and %v, want their EOF", got[0].err, got[1].err)
	}
	// The log stream sent the task's lines and statuses and no end event;
	// the event stream, following from the org's newest event, nothing.
	if fmt.Sprint(got[0].events) != "[log status log status]" || len(got[1].events) != 0 {
		t.Fatalf("events %v and %v", got[0].events, got[1].events)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("streams took %s to end", d)
	}
	// A new stream is refused while shutting down.
	w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-idle/logs?follow=true", key: "k-viewer-a"})
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("stream during shutdown: %d", w.Code)
	}
}
