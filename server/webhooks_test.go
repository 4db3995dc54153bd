package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// hookReceiver is a real local HTTP receiver: it verifies signatures with
// its secret (learnt from the ping when generated) and answers status.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret []byte
	status int
	got    []api.Event
	bad    int
}

func newHookReceiver(t *testing.T, secret string, status int) *hookReceiver {
	r := &hookReceiver{secret: []byte(secret), status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ev api.Event
		body, err := events.VerifyRequest(req, r.secret, 0)
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		if err != nil || req.Header.Get(events.HeaderEvent) != string(ev.Type) || req.Header.Get(events.HeaderDelivery) != ev.ID {
			r.bad++
			http.Error(w, "refused", http.StatusUnauthorized)
			return
		}
		r.got = append(r.got, ev)
		w.WriteHeader(r.status)
		fmt.Fprint(w, "receiver says hello")
	}))
	t.Cleanup(r.Close)
	return r
}

func TestCreateWebhookPingsAndStores(t *testing.T) {
	ts := newTestServer(t, false, allowLoopbackHooks(t))
	rcv := newHookReceiver(t, "given-secret-0123456789", 204)
	body := fmt.Sprintf(`{"url":%q,"events":["task.completed","task.failed","task.completed"],"agent":"agent-1","secret":"given-secret-0123456789"}`, rcv.URL+"/hook?x=1")
	w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: body})
	if w.Code != 200 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var hook api.Webhook
	if err := json.Unmarshal(w.Body.Bytes(), &hook); err != nil {
		t.Fatal(err)
	}
	if !webhookIDPattern.MatchString(hook.ID) || hook.Secret != "" || hook.Agent != "agent-1" || fmt.Sprint(hook.Events) != "[task.completed task.failed]" ||
		hook.CreatedBy != "admin-a" || strings.Contains(w.Body.String(), "given-secret") {
		t.Fatalf("created %s", w.Body)
	}
	if len(rcv.got) != 1 || rcv.got[0].Type != task.EventPing || rcv.got[0].Webhook == nil || rcv.got[0].Webhook.ID != hook.ID || rcv.got[0].Task != nil {
		t.Fatalf("receiver got %+v (bad %d)", rcv.got, rcv.bad)
	}
	// Stored sealed: the store never has the secret in plain text, and it
	// opens only for this webhook.
	stored, err := ts.store.GetWebhook(t.Context(), "org-a", hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.SealedSecret), "given-secret") {
		t.Fatal("secret stored in plain text")
	}
	if plain, err := ts.opts.Secrets.OpenBytes(stored.SealedSecret, secret.WebhookSecretContext("org-a", hook.ID)); err != nil || string(plain) != "given-secret-0123456789" {
		t.Fatalf("open: %q %v", plain, err)
	}
	if _, err := ts.opts.Secrets.OpenBytes(stored.SealedSecret, secret.WebhookSecretContext("org-a", "wh-other")); err == nil {
		t.Fatal("the sealed secret opens for another webhook")
	}

	// A generated secret is returned once, and signs the ping.
	gen := newHookReceiver(t, "", 200)
	gen.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gen.mu.Lock()
		defer gen.mu.Unlock()
		gen.got = append(gen.got, api.Event{ID: r.Header.Get(events.HeaderSignature)})
	})
	w = ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: fmt.Sprintf(`{"url":%q}`, gen.URL)})
	var genHook api.Webhook
	if err := json.Unmarshal(w.Body.Bytes(), &genHook); err != nil || w.Code != 200 || !strings.HasPrefix(genHook.Secret, "whsec_") || len(genHook.Events) != 0 {
		t.Fatalf("generated: %d %s", w.Code, w.Body)
	}
	if len(gen.got) != 1 || !strings.HasPrefix(gen.got[0].ID, "t=") {
		t.Fatalf("generated ping: %+v", gen.got)
	}

	// List, get: never a secret.
	w = ts.do(t, req{method: "GET", path: "/api/v1/webhooks", key: "k-admin-a"})
	var list []api.Webhook
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list) != 2 || list[0].ID != hook.ID || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("list: %s", w.Body)
	}
	if w = ts.do(t, req{method: "GET", path: "/api/v1/webhooks/" + genHook.ID, key: "k-admin-a"}); w.Code != 200 || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}
	// Other orgs and roles.
	for _, c := range []struct {
		method, path, key string
		status            int
	}{
		{"GET", "/api/v1/webhooks/" + hook.ID, "k-admin-b", 404},
		{"DELETE", "/api/v1/webhooks/" + hook.ID, "k-admin-b", 404},
		{"GET", "/api/v1/webhooks/" + hook.ID + "/deliveries", "k-admin-b", 404},
		{"GET", "/api/v1/webhooks/wh-nope", "k-admin-a", 404},
		{"GET", "/api/v1/webhooks", "k-operator-a", 403},
		{"GET", "/api/v1/webhooks", "k-agent-a", 403},
		{"GET", "/api/v1/webhooks", "k-viewer-a", 403},
		{"GET", "/api/v1/webhooks/signing-secret", "k-operator-a", 403},
		{"GET", "/api/v1/webhooks?x=1", "k-admin-a", 400},
	} {
		w := ts.do(t, req{method: c.method, path: c.path, key: c.key})
		if decodeError(t, w); w.Code != c.status {
			t.Errorf("%s %s as %s: %d %s", c.method, c.path, c.key, w.Code, w.Body)
		}
	}
	if w = ts.do(t, req{method: "GET", path: "/api/v1/webhooks", key: "k-admin-b"}); w.Body.String() != "[]" {
		t.Fatalf("org b sees %s", w.Body)
	}
	// Delete.
	if w = ts.do(t, req{method: "DELETE", path: "/api/v1/webhooks/" + hook.ID, key: "k-admin-a"}); w.Code != 200 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w = ts.do(t, req{method: "GET", path: "/api/v1/webhooks/" + hook.ID, key: "k-admin-a"}); w.Code != 404 {
		t.Fatalf("after delete: %d", w.Code)
	}
}

func TestCreateWebhookRefusals(t *testing.T) {
	ts := newTestServer(t, false, allowLoopbackHooks(t))
	failing := newHookReceiver(t, "given-secret-0123456789", 500)
	redirect := httptest.NewServer(http.RedirectHandler("https://example.com/", http.StatusFound))
	defer redirect.Close()
	for _, c := range []struct {
		body, field string
		status      int
	}{
		{`{"url":"` + failing.URL + `","secret":"given-secret-0123456789"}`, "url", 400},
		{`{"url":"` + redirect.URL + `"}`, "url", 400},
		{`{"url":"ftp://x/"}`, "url", 400},
		{`{"url":"https://user:pw@x/"}`, "url", 400},
		{`{}`, "url", 400},
		{`{"url":"https://x/","events":["task.exploded"]}`, "events", 400},
		{`{"url":"https://x/","events":"task.completed"}`, "events", 400},
		{`{"url":"https://x/","secret":"short"}`, "secret", 400},
		{`{"url":"https://x/","secret":"has spaces in it ......"}`, "secret", 400},
		{`{"url":"https://x/","agent":"bad agent"}`, "agent", 400},
		{`{"url":"https://x/","runner":7}`, "runner", 400},
		{`{"url":"https://x/","extra":1}`, "extra", 400},
		{`[]`, "body", 400},
	} {
		w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: c.body})
		e := decodeError(t, w)
		if w.Code != c.status || e.Error.Details["field"] != c.field {
			t.Errorf("%s: %d %s", c.body, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "given-secret") || strings.Contains(w.Body.String(), "pw@") {
			t.Errorf("%s: the answer repeats a secret: %s", c.body, w.Body)
		}
	}
	// The receiver's status code is reported, never its answer.
	w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"` + failing.URL + `","secret":"given-secret-0123456789"}`})
	e := decodeError(t, w)
	if e.Error.Details["status_code"] != float64(500) || e.Error.Details["answer"] != nil || !strings.Contains(e.Error.Message, "500") ||
		strings.Contains(w.Body.String(), "receiver says hello") {
		t.Fatalf("ping failure: %s", w.Body)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/webhooks", key: "k-admin-a"}); w.Body.String() != "[]" {
		t.Fatalf("a refused webhook was stored: %s", w.Body)
	}
	if w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-operator-a", body: `{"url":"https://x/"}`}); w.Code != 403 {
		t.Fatalf("operator: %d", w.Code)
	}
	if w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{}`, header: [][2]string{{"Content-Type", "text/plain"}}}); w.Code != 415 {
		t.Fatalf("text/plain: %d", w.Code)
	}
}

func TestWebhookDeliveriesLog(t *testing.T) {
	ts := newTestServer(t, false, allowLoopbackHooks(t))
	rcv := newHookReceiver(t, "given-secret-0123456789", 200)
	w := ts.do(t, req{method: "POST", path: "/api/v1/webhooks", key: "k-admin-a", body: `{"url":"` + rcv.URL + `","secret":"given-secret-0123456789"}`})
	var hook api.Webhook
	_ = json.Unmarshal(w.Body.Bytes(), &hook)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		d := store.Delivery{Org: "org-a", EventID: "evt-a", EventType: task.EventTaskCompleted, TaskID: "task-a", Target: hook.ID, Attempt: i,
			StatusCode: 500, Latency: 1500 * time.Microsecond, Error: "receiver answered 500 Internal Server Error", At: at.Add(time.Duration(i) * time.Second)}
		if i == 5 {
			d.StatusCode, d.Error, d.Succeeded = 200, "", true
		}
		if err := ts.store.AddDelivery(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.store.AddDelivery(t.Context(), store.Delivery{Org: "org-a", EventID: "evt-b", EventType: task.EventTaskFailed, Target: hook.ID, Attempt: 1, At: at}); err != nil {
		t.Fatal(err)
	}
	w = ts.do(t, req{method: "GET", path: "/api/v1/webhooks/" + hook.ID + "/deliveries?event_id=evt-a&limit=3", key: "k-admin-a"})
	var ds []api.Delivery
	if err := json.Unmarshal(w.Body.Bytes(), &ds); err != nil || w.Code != 200 || len(ds) != 3 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if d := ds[0]; d.Attempt != 5 || !d.Succeeded || d.StatusCode != 200 || d.LatencyMS != 1.5 || d.EventID != "evt-a" || d.TaskID != "task-a" || d.At != "2026-01-01T00:00:05.000Z" {
		t.Fatalf("newest %+v", d)
	}
	if ds[1].Attempt != 4 || ds[1].Error == "" || ds[1].StatusCode != 500 {
		t.Fatalf("second %+v", ds[1])
	}
	next := w.Header().Get("X-Next-Cursor")
	w = ts.do(t, req{method: "GET", path: "/api/v1/webhooks/" + hook.ID + "/deliveries?event_id=evt-a&cursor=" + next, key: "k-admin-a"})
	_ = json.Unmarshal(w.Body.Bytes(), &ds)
	if len(ds) != 2 || ds[0].Attempt != 2 || ds[1].Attempt != 1 || w.Header().Get("X-Next-Cursor") != "" {
		t.Fatalf("older page %s", w.Body)
	}
	for _, q := range []string{"limit=0", "cursor=abc", "nope=1", "event_id="} {
		w := ts.do(t, req{method: "GET", path: "/api/v1/webhooks/" + hook.ID + "/deliveries?" + q, key: "k-admin-a"})
		if decodeError(t, w); w.Code != 400 {
			t.Errorf("%s: %d", q, w.Code)
		}
	}
}

func TestSigningSecret(t *testing.T) {
	ts := newTestServer(t, false)
	get := func(key string) api.SigningSecret {
		w := ts.do(t, req{method: "GET", path: "/api/v1/webhooks/signing-secret", key: key})
		var s api.SigningSecret
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return s
	}
	a, a2, b := get("k-admin-a"), get("k-admin-a"), get("k-admin-b")
	if a.Org != "org-a" || !strings.HasPrefix(a.Secret, secret.SigningPrefix) || a.Secret != a2.Secret || a.Secret == b.Secret ||
		a.Secret != ts.opts.Secrets.SigningSecret("org-a") {
		t.Fatalf("secrets %+v %+v %+v", a, a2, b)
	}
}

// TestNotifyParameter: parsed with the create body, refused unless the
// server allows its host.
func TestNotifyParameter(t *testing.T) {
	body := func(notify string) string {
		return `{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"notify":` + notify + `}}`
	}
	none := newTestServer(t, true)
	w := none.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a", body: body(`{"url":"https://hooks.example.com/x"}`)})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "parameters.notify.url" || !strings.Contains(e.Error.Message, "--notify-allow") {
		t.Fatalf("no allow list: %d %s", w.Code, w.Body)
	}
	allow, err := events.ParseAllowList([]string{"hooks.example.com", "127.0.0.1:9000"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, true, func(o *Options) { o.NotifyAllow = allow })
	for _, c := range []struct {
		notify, field string
	}{
		{`{"url":"https://evil.example.com/x"}`, "parameters.notify.url"},
		{`{"url":"http://127.0.0.1:9001/"}`, "parameters.notify.url"},
		{`{"url":"https://u:p@hooks.example.com/"}`, "parameters.notify.url"},
		{`{"url":"ftp://hooks.example.com/"}`, "parameters.notify.url"},
		{`{"url":7}`, "parameters.notify.url"},
		{`{}`, "parameters.notify.url"},
		{`{"url":"https://hooks.example.com/","events":["task.nope"]}`, "parameters.notify.events"},
		{`{"url":"https://hooks.example.com/","events":"task.completed"}`, "parameters.notify.events"},
		{`{"url":"https://hooks.example.com/","secret":"x"}`, "parameters.notify.secret"},
		{`"https://hooks.example.com/"`, "parameters.notify"},
	} {
		w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a", body: body(c.notify)})
		if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != c.field {
			t.Errorf("%s: %d %s", c.notify, w.Code, w.Body)
		}
	}
	w = ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a",
		body: body(`{"url":"https://HOOKS.example.com/cb?run=1","events":["task.completed","task.failed"]}`)})
	if w.Code != 200 {
		t.Fatalf("allowed notify: %d %s", w.Code, w.Body)
	}
}

// FuzzParseWebhook: a webhook create body never panics, and an accepted one
// is valid.
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{`{"url":"https://x/"}`, `{"url":"http://h:1/p?q","events":["task.completed"],"agent":"a","runner":"r","secret":"0123456789abcdef"}`,
		`{"url":"https://u@x/"}`, `{"events":[]}`, `null`, `{"url":"https://x/","secret":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := parseWebhook(body)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if _, err := events.CheckURL(w.URL); err != nil {
			t.Fatalf("accepted URL %q: %v", w.URL, err)
		}
		for _, e := range w.Events {
			if !e.Valid() {
				t.Fatalf("accepted event type %q", e)
			}
		}
		if w.Secret != "" && (len(w.Secret) < minSecretLen || len(w.Secret) > maxSecretLen) {
			t.Fatalf("accepted secret of %d bytes", len(w.Secret))
		}
	})
}

// FuzzStreamQueries: the query parsers of the log and event streams never
// panic, and every error names its parameter.
func FuzzStreamQueries(f *testing.F) {
	for _, s := range []string{"follow=true&level=warn,error", "cursor=12:status", "type=task.completed&agent=a&limit=5", "cursor=-1", "limit=x&follow=1"} {
		f.Add(s, "12")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, rawQuery, lastID string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		for _, fn := range []func() error{
			func() error { _, err := parseFollowQuery(q, lastID); return err },
			func() error { _, err := parseEventQuery(q, lastID, true); return err },
			func() error { _, err := parseEventQuery(q, lastID, false); return err },
			func() error { _, err := parseDeliveryQuery(q); return err },
		} {
			if err := fn(); err != nil {
				var fe *fieldError
				if _, emptyKey := q[""]; !errors.As(err, &fe) || (fe.Field == "" && !emptyKey) {
					t.Fatalf("error without a field: %v", err)
				}
			}
		}
		if c, err := parseLogCursor(lastID); err == nil && (c.id < 0 || fmt.Sprint(c.id)+map[bool]string{true: statusSuffix}[c.statusSent] != lastID) {
			t.Fatalf("cursor %q read as %+v", lastID, c)
		}
	})
}
