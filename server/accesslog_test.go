package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestAccessLogNeverHoldsKeys sends good, bad and malformed keys in both
// schemes to every kind of route, panics included, and checks that no log
// entry holds any of them while each request is logged with its request ID.
func TestAccessLogNeverHoldsKeys(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	ts := newTestServer(t, true, func(o *Options) { o.Logger = zap.New(core) })
	seedRows(t, ts)
	ts.router.GET("/api/v1/test-panic", func(*gin.Context) { panic("boom") })
	secrets := []string{"k-admin-a", "k-viewer-a", "not-a-real-key-0123456789", "malformed-key-material"}
	auths := []string{"UserKey k-admin-a", "Bearer k-admin-a", "UserKey k-viewer-a", "UserKey not-a-real-key-0123456789", "Token malformed-key-material", "malformed-key-material"}
	paths := []struct{ method, path, body string }{
		{"GET", "/api/v1/tasks", ""},
		{"GET", "/api/v1/tasks/task-a1", ""},
		{"GET", "/api/v1/tasks/task-a1/logs?level=nope", ""},
		{"PUT", "/api/v1/tasks/task-a1/cancel", ""},
		{"POST", "/api/v1/tasks", validBody},
		{"POST", "/api/v1/tasks", `{"name":`},
		{"DELETE", "/api/v1/tasks", ""},
		{"GET", "/api/v1/test-panic", ""},
		{"GET", "/nope", ""},
	}
	n := 0
	for _, a := range auths {
		for _, p := range paths {
			n++
			rid := fmt.Sprintf("rid-%d", n)
			w := ts.do(t, req{method: p.method, path: p.path, body: p.body, header: [][2]string{{"Authorization", a}, {"X-Request-ID", rid}}})
			if got := w.Header().Get("X-Request-ID"); got != rid {
				t.Fatalf("X-Request-ID %q, want %q echoed", got, rid)
			}
		}
	}
	entries := logs.All()
	access := map[string]bool{}
	for _, e := range entries {
		text := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Fatalf("log entry holds key %q: %s", s, text)
			}
		}
		if strings.Contains(strings.ToLower(text), "authorization") {
			t.Fatalf("log entry mentions the Authorization header: %s", text)
		}
		if e.Message == "http request" {
			access[e.ContextMap()["request_id"].(string)] = true
		}
	}
	for i := 1; i <= n; i++ {
		if !access[fmt.Sprintf("rid-%d", i)] {
			t.Fatalf("request rid-%d has no access log entry", i)
		}
	}
}

func TestRequestID(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ts := newTestServer(t, false, func(o *Options) { o.Logger = zap.New(core) })
	// Generated when absent or invalid, echoed when valid.
	for _, c := range []struct{ sent, want string }{
		{"", ""},
		{"abc-123_x.y:z@w", "abc-123_x.y:z@w"},
		{"has space", ""},
		{strings.Repeat("r", 129), ""},
		{"-leading", ""},
	} {
		var h [][2]string
		if c.sent != "" {
			h = [][2]string{{"X-Request-ID", c.sent}}
		}
		w := ts.do(t, req{method: "GET", path: "/healthz", header: h})
		got := w.Header().Get("X-Request-ID")
		if c.want != "" && got != c.want {
			t.Errorf("sent %q: got %q", c.sent, got)
		}
		if c.want == "" && (got == "" || got == c.sent || !validID(got)) {
			t.Errorf("sent %q: got %q, want a generated ID", c.sent, got)
		}
		last := logs.All()[logs.Len()-1].ContextMap()
		if last["request_id"] != got || last["status"] != int64(200) || last["path"] != "/healthz" {
			t.Errorf("access log %v", last)
		}
	}
}
