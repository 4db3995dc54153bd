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

// TestStreamsKeepAliveAndEndAtShutdown: an idle stream gets keep-alive
// comments, and CloseStreams ends it (without an end event) at once.
func TestStreamsKeepAliveAndEndAtShutdown(t *testing.T) {
	ts := newTestServer(t, true)
	ts.fake.started["task-idle"] = client.StartWorkflowOptions{} // its workflow runs
	ts.streams.keepAlive = 30 * time.Millisecond
	base := ts.httpServer(t)
	newTaskWriter(t, ts.store, "task-idle", "org-a").transition(task.StatusRunning, "")
	c := openSSE(t, t.Context(), base+"/api/v1/tasks/task-idle/logs?follow=true", "k-viewer-a")
	ev := c.next(t) // pending's line
	e := openSSE(t, t.Context(), base+"/api/v1/events?follow=true", "k-viewer-a")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	go ts.CloseStreams()
	var rest []string
	for {
		ev, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, ev.Name)
	}
	if _, err := e.Next(); err != io.EOF {
		t.Fatalf("event stream after CloseStreams: %v", err)
	}
	if c.Comments < 2 || e.Comments < 2 {
		t.Fatalf("keep-alives: %d and %d", c.Comments, e.Comments)
	}
	if fmt.Sprint(rest) != "[status log status]" || ev.Name != "log" {
		t.Fatalf("events %s then %v", ev.Name, rest)
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
