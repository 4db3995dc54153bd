package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/codec/control"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// fakeClock is a clock tests move on.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// get sends a GET with key over client and returns the status, the
// Retry-After header and the error code.
func get(t testing.TB, client *http.Client, url, key string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "UserKey "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), body.Error.Code
}

// TestAuthThrottleWrongKeysFromLoopback: 20,000 wrong keys in a loop over
// real HTTP from loopback: the first 20 get 401, every other one 429 with
// Retry-After, and so does a right key from the same address meanwhile
// (the lockout holds for every key); another address is not affected.
// Once the window has passed, a wrong key is a 401 again, a right one a
// 200.
func TestAuthThrottleWrongKeysFromLoopback(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ts := newTestServer(t, false, func(o *Options) { o.Now = clock.now })
	base := ts.httpServer(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	n := 20000
	if testing.Short() || raceEnabled {
		n = 2000
	}
	counts := map[int]int{}
	for i := 0; i < n; i++ {
		code, retry, errCode := get(t, client, base+"/api/v1/tasks", fmt.Sprintf("wrong-%d", i))
		counts[code]++
		switch code {
		case http.StatusUnauthorized:
			if i >= DefaultAuthFailures {
				t.Fatalf("request %d: 401 after %d failures", i, DefaultAuthFailures)
			}
		case http.StatusTooManyRequests:
			secs, err := strconv.Atoi(retry)
			if err != nil || secs < 1 || secs > 60 || errCode != codeTooManyRequests {
				t.Fatalf("request %d: 429 with Retry-After %q, code %q", i, retry, errCode)
			}
		default:
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if counts[401] != DefaultAuthFailures || counts[429] != n-DefaultAuthFailures {
		t.Fatalf("answers %v", counts)
	}
	// A right key from the locked-out address: throttled as well.
	if code, retry, _ := get(t, client, base+"/api/v1/tasks", "k-admin-a"); code != 429 || retry != "60" {
		t.Fatalf("right key during the lockout: %d Retry-After %q", code, retry)
	}
	// Public routes are not throttled.
	if code, _, _ := get(t, client, base+"/healthz", ""); code != 200 {
		t.Fatalf("healthz during the lockout: %d", code)
	}
	// Another address (127.0.0.2 is loopback too on Linux) is not locked.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	if req, _ := http.NewRequest("GET", base+"/healthz", nil); req != nil {
		if resp, err := other.Do(req); err != nil {
			t.Logf("no second loopback address (%v): that part is skipped", err)
		} else {
			resp.Body.Close()
			if code, _, _ := get(t, other, base+"/api/v1/tasks", "k-admin-a"); code != 200 {
				t.Fatalf("another address: %d", code)
			}
		}
	}
	clock.add(30 * time.Second)
	if _, retry, _ := get(t, client, base+"/api/v1/tasks", "wrong"); retry != "30" {
		t.Fatalf("Retry-After halfway: %q", retry)
	}
	clock.add(30 * time.Second)
	if code, _, _ := get(t, client, base+"/api/v1/tasks", "k-admin-a"); code != 200 {
		t.Fatalf("right key after the window: %d", code)
	}
	if code, _, _ := get(t, client, base+"/api/v1/tasks", "wrong"); code != 401 {
		t.Fatalf("wrong key after the window: %d", code)
	}
}

// TestAuthThrottleCountsEveryKeyCheck: wrong keys of the state routes
// (basic auth) and of the codec count, and lock those routes out too; a
// task's state credential is checked as ever during a lockout (runner
// hosts' task code must not cost their tasks the state), and a wrong one
// counts. Requests without a key count nothing. Successful requests do
// not reset the count.
func TestAuthThrottleCountsEveryKeyCheck(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	cd, err := control.New(bytes.Repeat([]byte{9}, codec.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, false, func(o *Options) { o.Now = clock.now; o.AuthFailures = 5; o.Codec = cd })
	ts.addTask(t, store.Task{ID: "task-s", Org: "org-a", Status: task.StatusRunning})
	stateBasic := func(pass string) int {
		hr := httptest.NewRequest("GET", "/api/v1/state/org-a/ws", nil)
		hr.SetBasicAuth("terraform", pass)
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, hr)
		return w.Code
	}
	for i := 0; i < 10; i++ {
		if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks"}); w.Code != 401 {
			t.Fatalf("no key: %d", w.Code)
		}
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks", key: "k-admin-a"}); w.Code != 200 {
		t.Fatalf("right key: %d", w.Code)
	}
	if code := stateBasic("wrong"); code != 401 {
		t.Fatalf("state, wrong key: %d", code)
	}
	if w := ts.stateReq(t, "GET", "/api/v1/state/org-a/ws", "task-s", "org-a", "other-ws", ""); w.Code != 401 {
		t.Fatalf("a wrong task credential: %d", w.Code)
	}
	if w := ts.do(t, req{method: "POST", path: "/api/v1/codec/decode", key: "wrong", body: `{"payloads":[]}`}); w.Code != 401 {
		t.Fatalf("codec, wrong key: %d", w.Code)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks", key: "k-admin-a"}); w.Code != 200 {
		t.Fatalf("right key: %d", w.Code)
	}
	ts.do(t, req{method: "GET", path: "/api/v1/tasks", key: "wrong"})
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks", key: "wrong"}); w.Code != 401 {
		t.Fatalf("5th failure: %d", w.Code)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks", key: "wrong"}); w.Code != 429 || w.Header().Get("Retry-After") != "60" {
		t.Fatalf("the 5th failure did not lock: %d %q", w.Code, w.Header().Get("Retry-After"))
	}
	if code := stateBasic("k-admin-a"); code != 429 {
		t.Fatalf("state, right key during the lockout: %d", code)
	}
	if w := ts.do(t, req{method: "POST", path: "/api/v1/codec/decode", key: "k-admin-a", body: `{"payloads":[]}`}); w.Code != 429 {
		t.Fatalf("codec during the lockout: %d", w.Code)
	}
	if w := ts.stateReq(t, "GET", "/api/v1/state/org-a/ws", "task-s", "org-a", "ws", ""); w.Code != 204 {
		t.Fatalf("a task's credential during the lockout: %d %s", w.Code, w.Body)
	}
	// Requests the process makes to itself (the MCP tools) are neither
	// throttled nor counted.
	hr := InProcess(httptest.NewRequest("GET", "/api/v1/tasks", nil))
	hr.Header.Set("Authorization", "UserKey k-admin-a")
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, hr)
	if w.Code != 200 {
		t.Fatalf("in process during the lockout: %d", w.Code)
	}
	clock.add(time.Minute)
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks", key: "k-admin-a"}); w.Code != 200 {
		t.Fatalf("after the window: %d", w.Code)
	}
}

// TestAuthThrottleWindow: failures spread wider than the window never lock.
func TestAuthThrottleWindow(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	th := newAuthThrottle(3, time.Minute, clock.now)
	for i := 0; i < 10; i++ {
		th.fail("192.0.2.1")
		th.fail("192.0.2.1")
		if _, locked := th.locked("192.0.2.1"); locked {
			t.Fatalf("round %d: locked after 2 failures", i)
		}
		clock.add(time.Minute)
	}
	th.fail("192.0.2.1")
	th.fail("192.0.2.1")
	clock.add(59 * time.Second)
	th.fail("192.0.2.1")
	if d, locked := th.locked("192.0.2.1"); !locked || d != time.Minute {
		t.Fatalf("3 failures within the window: %v %v", d, locked)
	}
	// A failure during the lockout does not extend it.
	clock.add(30 * time.Second)
	th.fail("192.0.2.1")
	if d, _ := th.locked("192.0.2.1"); d != 30*time.Second {
		t.Fatalf("lockout extended: %v left", d)
	}
	clock.add(30 * time.Second)
	if _, locked := th.locked("192.0.2.1"); locked || th.size() != 0 {
		t.Fatalf("still locked, or remembered (%d)", th.size())
	}
}

// TestAuthThrottleMemoryBounded: the table holds at most its cap of
// addresses, forgetting the least recently seen.
func TestAuthThrottleMemoryBounded(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	th := newAuthThrottle(2, time.Minute, clock.now)
	th.cap = 100
	th.fail("10.0.0.1")
	th.fail("10.0.0.1") // locked
	for i := 0; i < 10000; i++ {
		if i%50 == 0 {
			th.locked("10.0.0.1") // seen again: kept
		}
		th.fail(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
		if th.size() > 100 {
			t.Fatalf("%d addresses remembered", th.size())
		}
	}
	if _, locked := th.locked("10.0.0.1"); !locked {
		t.Fatal("the recently seen locked address was forgotten")
	}
	if len(th.entries) != th.lru.Len() {
		t.Fatalf("map %d, list %d", len(th.entries), th.lru.Len())
	}
	if authThrottleCap != 10000 {
		t.Fatalf("the README documents 10,000 addresses, the code has %d", authThrottleCap)
	}
}

func TestClientAddr(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"127.0.0.1:5000", "127.0.0.1"},
		{"192.0.2.7:1", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},
		{"[::1]:80", "::/64"},
		{"pipe", "pipe"},
	} {
		if got := clientAddr(&http.Request{RemoteAddr: c.remote}); got != c.want {
			t.Errorf("%s: %s, want %s", c.remote, got, c.want)
		}
	}
}

// openRawStream opens a GET stream and returns its response (any status).
func openRawStream(t *testing.T, ctx context.Context, method, url, key string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "UserKey "+key)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestStreamsCappedPerKey: over real HTTP, a key holds at most
// MaxStreamsPerKey streams at once, event streams, log follows and /mcp
// requests together; one more is a 429 saying why. Other keys are not
// affected, and a closed stream frees its place.
func TestStreamsCappedPerKey(t *testing.T) {
	mcpOpen := make(chan struct{}, 64)
	mcpHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		mcpOpen <- struct{}{}
		<-r.Context().Done()
	})
	ts := newTestServer(t, true, func(o *Options) { o.MCP = mcpHandler })
	ts.fake.started["task-f"] = client.StartWorkflowOptions{}
	newTaskWriter(t, ts.store, "task-f", "org-a").transition(task.StatusRunning, "")
	base := ts.httpServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var first context.CancelFunc
	for i := 0; i < DefaultMaxStreamsPerKey; i++ {
		var resp *http.Response
		switch i % 3 {
		case 0:
			sctx, scancel := context.WithCancel(ctx)
			if first == nil {
				first = scancel
			} else {
				defer scancel()
			}
			resp = openRawStream(t, sctx, "GET", base+"/api/v1/events?follow=true", "k-operator-a")
		case 1:
			resp = openRawStream(t, ctx, "GET", base+"/api/v1/tasks/task-f/logs?follow=true", "k-operator-a")
		case 2:
			resp = openRawStream(t, ctx, "POST", base+MCPPath, "k-operator-a")
			<-mcpOpen
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("stream %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	for _, path := range []string{"/api/v1/events?follow=true", "/api/v1/tasks/task-f/logs?follow=true", MCPPath} {
		method := "GET"
		if path == MCPPath {
			method = "POST"
		}
		resp := openRawStream(t, ctx, method, base+path, "k-operator-a")
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 429 || !strings.Contains(string(b), "has 16 streams open") || !strings.Contains(string(b), "--max-streams-per-key") {
			t.Fatalf("%s, stream 17: %d %s", path, resp.StatusCode, b)
		}
	}
	// Not a stream: served as ever.
	if code, _, _ := get(t, http.DefaultClient, base+"/api/v1/events", "k-operator-a"); code != 200 {
		t.Fatalf("events without follow: %d", code)
	}
	// Another key of the same org.
	if resp := openRawStream(t, ctx, "GET", base+"/api/v1/events?follow=true", "k-viewer-a"); resp.StatusCode != 200 {
		t.Fatalf("another key: %d", resp.StatusCode)
	}
	// A closed stream frees its place (once the server sees it go).
	first()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		resp := openRawStream(t, sctx, "GET", base+"/api/v1/events?follow=true", "k-operator-a")
		if resp.StatusCode == 200 {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the closed stream's place is still taken: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startServer serves h over real HTTP/1.1, or HTTP/2 over TLS, with a
// read timeout; it returns the base URL and a client.
func startServer(t *testing.T, h http.Handler, h2 bool, readTimeout time.Duration) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = readTimeout
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.URL, srv.Client()
}

func protoName(h2 bool) string {
	if h2 {
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// TestStreamsOutliveTheTimeouts: with a read timeout and a write timeout
// far shorter than the stream, an idle SSE stream and an idle /mcp stream
// stay open, over HTTP/1.1 and HTTP/2 (which resets a stream whose write
// deadline passes, even idle): each write gets the write timeout, and
// there is none between writes.
func TestStreamsOutliveTheTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	mcpHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		time.Sleep(3 * timeout) // a tool call that says nothing for a while
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := 0; i < 3; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(3 * timeout):
			}
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			ts := newTestServer(t, false, func(o *Options) { o.WriteTimeout = timeout; o.MCP = mcpHandler })
			ts.streams.keepAlive = 3 * timeout
			t.Cleanup(ts.CloseStreams)
			base, client := startServer(t, ts.Handler(), h2, timeout)

			req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/events?follow=true", nil)
			req.Header.Set("Authorization", "UserKey k-viewer-a")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
				t.Fatalf("stream: %d %s", resp.StatusCode, resp.Proto)
			}
			start := time.Now()
			r := bufio.NewReader(resp.Body)
			for keepAlives := 0; keepAlives < 3; {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("the stream ended after %v: %v", time.Since(start), err)
				}
				if strings.HasPrefix(line, ":") {
					keepAlives++
				}
			}
			if time.Since(start) < 5*timeout {
				t.Fatalf("keep-alives too soon: %v", time.Since(start))
			}

			req, _ = http.NewRequest("POST", base+MCPPath, strings.NewReader(`{"jsonrpc":"2.0"}`))
			req.Header.Set("Authorization", "UserKey k-viewer-a")
			mresp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer mresp.Body.Close()
			b, err := io.ReadAll(mresp.Body)
			if err != nil || strings.Count(string(b), "data:") != 3 {
				t.Fatalf("mcp stream: %q %v", b, err)
			}
		})
	}
}

// TestWriteTimeoutBoundsAnswers: a request that is not a stream gets its
// answer within the write timeout of its start, or the connection (the
// HTTP/2 stream) is cut.
func TestWriteTimeoutBoundsAnswers(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ts := newTestServer(t, false, func(o *Options) { o.WriteTimeout = timeout })
	r := gin.New()
	r.Use(ts.deadlines)
	r.GET("/slow", func(c *gin.Context) {
		time.Sleep(2 * timeout)
		c.String(200, strings.Repeat("x", 1<<20))
	})
	r.GET("/quick", func(c *gin.Context) { c.String(200, "ok") })
	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			base, client := startServer(t, r, h2, timeout)
			if resp, err := client.Get(base + "/quick"); err != nil || resp.StatusCode != 200 {
				t.Fatalf("quick: %v", err)
			} else {
				resp.Body.Close()
			}
			resp, err := client.Get(base + "/slow")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("an answer written after the write timeout arrived")
			}
		})
	}
}

// TestOpenAPIDocumentsThrottling: every route that needs a key documents
// the 429, with Retry-After.
func TestOpenAPIDocumentsThrottling(t *testing.T) {
	d := loadOpenAPI(t)
	for key, op := range d.operations() {
		if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
			continue
		}
		r, ok := op["responses"].(map[string]any)["429"]
		if !ok {
			t.Errorf("%s: no 429", key)
			continue
		}
		if d.resolve(t, r)["headers"].(map[string]any)["Retry-After"] == nil {
			t.Errorf("%s: 429 without Retry-After", key)
		}
	}
}
