package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/terratask/terratask/events"
)

// Test traffic goes to loopback only: that internal and metadata addresses
// are refused is tested by the refusal (before any connect), and names
// resolve through fakeResolver, never a real resolver.

// allowLoopbackHooks is --webhook-allow 127.0.0.1: the test receivers.
func allowLoopbackHooks(t testing.TB) func(*Options) {
	t.Helper()
	allow, err := events.ParseAllowListFlag("--webhook-allow", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return func(o *Options) { o.WebhookAllow = allow }
}

// fakeResolver answers from a table: answers[name][i] for the i-th lookup
// of name, the last one ever after; other names do not exist.
func fakeResolver(answers map[string][]string) (events.Resolver, func(string) int) {
	var mu sync.Mutex
	lookups := map[string]int{}
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		a, ok := answers[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		i := lookups[host]
		lookups[host]++
		if i >= len(a) {
			i = len(a) - 1
		}
		var out []netip.Addr
		for _, ip := range strings.Split(a[i], ",") {
			out = append(out, netip.MustParseAddr(ip))
		}
		return out, nil
	}
	count := func(host string) int {
		mu.Lock()
		defer mu.Unlock()
		return lookups[host]
	}
	return resolve, count
}

// countingReceiver is a loopback receiver that counts its requests and
// answers status with body.
func countingReceiver(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestWebhookToInternalAddressRefused: by default a webhook URL whose host
// is, or resolves to, a loopback, private or link-local (metadata) address
// is a 400 naming url; nothing is sent there and nothing is stored.
func TestWebhookToInternalAddressRefused(t *testing.T) {
	resolve, _ := fakeResolver(map[string][]string{"loopback.test": {"127.0.0.1"}, "split.test": {"93.184.215.14,10.0.0.3"}})
	ts := newTestServer(t, false, func(o *Options) { o.Resolve = resolve })
	rcv, hits := countingReceiver(t, 200, "")
	_, port, _ := net.SplitHostPort(rcv.Listener.Addr().String())
	for _, u := range []string{
		rcv.URL + "/hook",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://10.0.0.1/",
		"http://[::1]:" + port + "/",
		"http://localhost:" + port + "/",
		"http://loopback.test:" + port + "/",
		"https://split.test/",
		"http://0.0.0.0:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
	} {
		w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"` + u + `"}`})
		e := decodeError(t, w)
		if w.Code != 400 || e.Error.Details["field"] != "url" || !strings.HasPrefix(e.Error.Message, "url: ") || !strings.Contains(e.Error.Message, "--webhook-allow") {
			t.Errorf("%s: %d %s", u, w.Code, w.Body)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/webhooks", key: "k-admin-a"}); w.Body.String() != "[]" {
		t.Fatalf("a refused webhook was stored: %s", w.Body)
	}
	// A name that does not resolve is a 400 too.
	w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"https://nowhere.test/"}`})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "url" || !strings.Contains(e.Error.Message, "does not resolve") {
		t.Fatalf("unknown name: %d %s", w.Code, w.Body)
	}
}

// TestWebhookAllowedLoopback: --webhook-allow 127.0.0.1 lets a webhook
// reach a loopback receiver (its ping goes through the pinned dialer), by
// IP or by a name that resolves there; other internal addresses stay
// refused.
func TestWebhookAllowedLoopback(t *testing.T) {
	resolve, lookups := fakeResolver(map[string][]string{"receiver.test": {"127.0.0.1"}})
	ts := newTestServer(t, false, allowLoopbackHooks(t), func(o *Options) { o.Resolve = resolve })
	rcv, hits := countingReceiver(t, 204, "")
	_, port, _ := net.SplitHostPort(rcv.Listener.Addr().String())
	for i, u := range []string{rcv.URL + "/hook", "http://receiver.test:" + port + "/hook"} {
		w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"` + u + `"}`})
		if w.Code != 200 || hits.Load() != int32(i+1) {
			t.Fatalf("%s: %d %s (receiver got %d)", u, w.Code, w.Body, hits.Load())
		}
	}
	// Checked at create, then resolved again by the ping's dialer.
	if n := lookups("receiver.test"); n != 2 {
		t.Fatalf("receiver.test looked up %d times", n)
	}
	for _, u := range []string{"http://169.254.169.254/", "http://10.0.0.1/", "http://127.0.0.2:" + port + "/", "http://[::1]:" + port + "/"} {
		w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"` + u + `"}`})
		if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "url" {
			t.Errorf("%s: %d %s", u, w.Code, w.Body)
		}
	}
}

// TestWebhookRebindingRefusedAtPing: a name that resolves to a public
// address when the webhook is checked and to loopback when the ping dials
// is refused at the dial: 400, status_code 0, the receiver gets nothing.
func TestWebhookRebindingRefusedAtPing(t *testing.T) {
	rcv, hits := countingReceiver(t, 200, "")
	_, port, _ := net.SplitHostPort(rcv.Listener.Addr().String())
	resolve, lookups := fakeResolver(map[string][]string{"rebind.test": {"93.184.215.14", "127.0.0.1"}})
	ts := newTestServer(t, false, func(o *Options) { o.Resolve = resolve })
	w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"http://rebind.test:` + port + `/hook"}`})
	e := decodeError(t, w)
	if w.Code != 400 || e.Error.Details["field"] != "url" || e.Error.Details["status_code"] != float64(0) ||
		!strings.Contains(e.Error.Message, "refused: the host resolves to a loopback address") {
		t.Fatalf("rebinding: %d %s", w.Code, w.Body)
	}
	if hits.Load() != 0 || lookups("rebind.test") != 2 {
		t.Fatalf("receiver got %d requests; %d lookups", hits.Load(), lookups("rebind.test"))
	}
}

// TestWebhookPingReportsStatusNotBody: a ping answered 500 reports the
// status code and never the receiver's body.
func TestWebhookPingReportsStatusNotBody(t *testing.T) {
	ts := newTestServer(t, false, allowLoopbackHooks(t))
	rcv, hits := countingReceiver(t, 500, "SECRET-BODY from an internal page")
	w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"` + rcv.URL + `"}`})
	e := decodeError(t, w)
	if w.Code != 400 || e.Error.Details["field"] != "url" || e.Error.Details["status_code"] != float64(500) || !strings.Contains(e.Error.Message, "500") {
		t.Fatalf("ping failure: %d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "SECRET-BODY") || len(e.Error.Details) != 2 || hits.Load() != 1 {
		t.Fatalf("the answer repeats the receiver's body: %s", w.Body)
	}
}

// TestTaskSourceAllowList: a task's remote module source is refused (400
// naming parameters.source) unless --source-allow lists its host; local
// paths, catalog modules and inline files are the runner's to check.
func TestTaskSourceAllowList(t *testing.T) {
	body := func(source string) string {
		return `{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"source":"` + source + `"}}`
	}
	remote := []string{
		"git::http://127.0.0.1/x",
		"http://169.254.169.254/",
		"https://example.com/vpc.zip",
		"s3::https://s3.amazonaws.com/bucket/vpc.zip",
		"gcs::https://www.googleapis.com/storage/v1/bucket/vpc.zip",
		"hg::http://hg.example.com/repo",
		"git@github.com:org/repo.git",
		"hashicorp/consul/aws",
	}
	none := newTestServer(t, true)
	for _, src := range append(remote, "file:///etc", "weird-thing") {
		w := none.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a", body: body(src)})
		if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "parameters.source" || !strings.HasPrefix(e.Error.Message, "parameters.source: ") {
			t.Errorf("%s: %d %s", src, w.Code, w.Body)
		}
	}
	for _, ok := range []string{"/srv/modules/vpc", "./vpc"} {
		if w := none.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a", body: body(ok)}); w.Code != 200 {
			t.Errorf("local %s: %d %s", ok, w.Code, w.Body)
		}
	}
	if w := none.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a",
		body: `{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"files":{"main.tf":"module \"x\" {\n source = \"./y\"\n}\n"}}}`}); w.Code != 200 {
		t.Errorf("inline files: %d %s", w.Code, w.Body)
	}

	allow, err := events.ParseAllowListFlag("--source-allow", []string{"127.0.0.1", "*.amazonaws.com", "github.com", "registry.terraform.io"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, true, func(o *Options) { o.SourceAllow = allow })
	for _, src := range remote {
		w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a", body: body(src)})
		host := strings.Contains(src, "127.0.0.1") || strings.Contains(src, "amazonaws") || strings.Contains(src, "github.com") || src == "hashicorp/consul/aws"
		if host && w.Code != 200 {
			t.Errorf("listed %s: %d %s", src, w.Code, w.Body)
		}
		if e := decodeErrorIf(w); !host && (w.Code != 400 || e["field"] != "parameters.source" || !strings.Contains(w.Body.String(), "--source-allow: 127.0.0.1, *.amazonaws.com")) {
			t.Errorf("unlisted %s: %d %s", src, w.Code, w.Body)
		}
	}
	// OpenTofu's registry is another host.
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a",
		body: `{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"source":"hashicorp/consul/aws","engine":"opentofu"}}`})
	if w.Code != 400 || !strings.Contains(w.Body.String(), "registry.opentofu.org") {
		t.Errorf("OpenTofu registry: %d %s", w.Code, w.Body)
	}
}

// decodeErrorIf returns an error body's details, or nil.
func decodeErrorIf(w *httptest.ResponseRecorder) map[string]any {
	if w.Code < 400 {
		return nil
	}
	var e errBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		return nil
	}
	return e.Error.Details
}
