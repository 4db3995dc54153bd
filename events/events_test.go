package events

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func TestSignMatchesTheDocumentedFormula(t *testing.T) {
	secret, body := []byte("s3cret-s3cret-s3cret"), []byte(`{"a":1}`)
	at := time.Unix(1767225600, 0)
	got := Sign(secret, body, at)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1767225600." + string(body)))
	if want := "t=1767225600,v1=" + hex.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret, body := []byte("s3cret-s3cret-s3cret"), []byte(`{"id":"evt-1"}`)
	now := time.Unix(1767225600, 0)
	sig := Sign(secret, body, now)
	other := Sign([]byte("another-secret-xx"), body, now)
	_, v1, _ := strings.Cut(sig, ",")
	for _, c := range []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", sig, body, now, nil},
		{"4m59s old", sig, body, now.Add(299 * time.Second), nil},
		{"5m01s old", sig, body, now.Add(301 * time.Second), ErrExpired},
		{"from the future", sig, body, now.Add(-10 * time.Minute), ErrExpired},
		{"tampered body", sig, []byte(`{"id":"evt-2"}`), now, ErrBadSignature},
		{"other secret", other, body, now, ErrBadSignature},
		{"rotation: two v1, one valid", other + "," + v1, body, now, nil},
		{"spaces", strings.ReplaceAll(sig, ",", ", "), body, now, nil},
		{"empty", "", body, now, ErrNoSignature},
		{"no t", v1, body, now, ErrNoSignature},
		{"no v1", "t=1767225600", body, now, ErrNoSignature},
		{"bad hex", "t=1767225600,v1=zz", body, now, ErrNoSignature},
		{"t changed", strings.Replace(sig, "t=1767225600", "t=1767225601", 1), body, now, ErrBadSignature},
	} {
		if err := Verify(secret, c.header, c.body, c.now, 0); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	secret := []byte("s3cret-s3cret-s3cret")
	now := time.Unix(1767225600, 0)
	f.Add(Sign(secret, []byte("{}"), time.Unix(1, 0)), []byte("{}"))
	f.Add("t=,v1=", []byte(""))
	f.Add("t=1,v1=00,v1=11,=,,", []byte("x"))
	f.Add("v1=zz, t=01767225600 ,", []byte(`{"id":"evt-1"}`))
	f.Add("t=1767229201", []byte("{}"))
	f.Add("t=1,v1=0", []byte("{}")) // signed 3604 s ahead (below)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		// The header as fuzzed, and with the documented signature of the
		// body (computed here, not by Sign) before and after it, so the
		// accepting paths are explored too: signed from 3604 s before now
		// to 3604 s after, by the header's length, across the tolerance
		// of an hour on both sides.
		ts := strconv.FormatInt(now.Unix()+int64(len(header)%9)*901-3604, 10)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(ts + "." + string(body)))
		signature := "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
		for _, h := range []string{header, signature + "," + header, header + "," + signature} {
			got := Verify(secret, h, body, now, time.Hour)
			if want := verifyByTheBook(secret, h, body, now.Unix(), 3600); !errors.Is(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("Verify(%q) = %v, want %v", h, got, want)
			}
		}
	})
}

// verifyByTheBook is the documented signature check, written apart from
// Verify as its fuzz oracle: the header is comma-separated key=value
// pairs (spaces around a pair ignored; the last t wins; a v1 is 64 hex
// digits); one v1 must be the hex HMAC-SHA256 of "<t>.<body>" keyed with
// the secret, and t (Unix seconds) within tolerance seconds of now.
func verifyByTheBook(secret []byte, header string, body []byte, now, tolerance int64) error {
	t, haveT := "", false
	var v1s []string
	for _, pair := range strings.Split(header, ",") {
		pair = strings.TrimSpace(pair)
		i := strings.IndexByte(pair, '=')
		if i < 0 {
			continue
		}
		switch key, value := pair[:i], pair[i+1:]; key {
		case "t":
			t, haveT = value, true
		case "v1":
			if _, err := hex.DecodeString(value); err == nil && len(value) == 2*sha256.Size {
				v1s = append(v1s, strings.ToLower(value))
			}
		}
	}
	unix, err := strconv.ParseInt(t, 10, 64)
	if !haveT || err != nil || len(v1s) == 0 {
		return ErrNoSignature
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t + "." + string(body)))
	if !slices.Contains(v1s, hex.EncodeToString(m.Sum(nil))) {
		return ErrBadSignature
	}
	if unix < now-tolerance || unix > now+tolerance {
		return ErrExpired
	}
	return nil
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"https://hooks.example.com/x?y=1", "http://127.0.0.1:8080/", "http://[::1]:9/p"} {
		if _, err := CheckURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ftp://x/", "https://user:pw@host/", "https://user@host/", "//host/x", "/relative",
		"https://host/#frag", "https:///nohost", "https://host:0/", "https://host:99999/", "https://host/ x", "mailto:x@y", "https://h/\x00",
		"https://" + strings.Repeat("a", MaxURLLen) + "/"} {
		_, err := CheckURL(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "pw") || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("%q: the message repeats the URL: %v", bad, err)
		}
	}
}

func TestAllowList(t *testing.T) {
	l, err := ParseAllowList([]string{"hooks.example.com", "10.0.0.5:8443", "*.ci.example.org", " ", "[::1]"})
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]bool{
		"https://hooks.example.com/x":      true,
		"https://HOOKS.example.com:444/x":  true,
		"https://evil.hooks.example.com/":  false,
		"https://10.0.0.5:8443/":           true,
		"https://10.0.0.5/":                false,
		"http://a.ci.example.org/":         true,
		"http://a.b.ci.example.org/":       true,
		"http://ci.example.org/":           false,
		"http://xci.example.org/":          false,
		"http://[::1]:7/":                  true,
		"http://example.com/hooks.example": false,
	} {
		u, _ := url.Parse(raw)
		if got := l.Allows(u); got != want {
			t.Errorf("%s: Allows = %v, want %v", raw, got, want)
		}
	}
	var none AllowList
	if !none.Empty() || none.Allows(&url.URL{Scheme: "http", Host: "x"}) {
		t.Fatal("the empty list allows something")
	}
	for _, bad := range []string{"http://x", "host:notaport", "*.", "a/b", "*"} {
		if _, err := ParseAllowList([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTargets(t *testing.T) {
	ev := store.Event{ID: "e", Org: "o", TaskID: "t", AgentID: "a1", RunnerID: "r1", Type: task.EventTaskCompleted}
	hooks := []store.Webhook{
		{ID: "all", Org: "o"},
		{ID: "completed", Org: "o", Events: []task.EventType{task.EventTaskCompleted}},
		{ID: "failed", Org: "o", Events: []task.EventType{task.EventTaskFailed}},
		{ID: "agent-a1", Org: "o", AgentID: "a1"},
		{ID: "agent-a2", Org: "o", AgentID: "a2"},
		{ID: "runner-r2", Org: "o", RunnerID: "r2"},
		{ID: "other-org", Org: "p"},
	}
	var ids []string
	for _, tg := range Targets(ev, hooks, &task.Notify{URL: "https://n/", Events: []task.EventType{task.EventTaskCompleted}}) {
		ids = append(ids, tg.ID+tg.URL)
	}
	if got := strings.Join(ids, " "); got != "all completed agent-a1 notifyhttps://n/" {
		t.Fatalf("targets %s", got)
	}
	if NotifyMatches(&task.Notify{URL: "https://n/"}, task.EventPing) || !NotifyMatches(&task.Notify{URL: "https://n/"}, task.EventTaskStep) ||
		NotifyMatches(&task.Notify{URL: "https://n/", Events: []task.EventType{task.EventTaskFailed}}, task.EventTaskStep) || NotifyMatches(nil, task.EventTaskStep) {
		t.Fatal("NotifyMatches")
	}
}

func TestNewEventCarriesTheTaskAtThatMoment(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := store.Task{ID: "task-1", Org: "o", Name: "n", AgentID: "a", RunnerID: "r", Status: task.StatusPending, CreatedAt: created, UpdatedAt: created,
		Metadata: map[string]any{"env": "prod"}}
	done := created.Add(time.Minute)
	tr := store.Transition{ID: "task-1", Status: task.StatusCompleted, Progress: 100, UpdatedAt: done, CompletedAt: &done,
		Result: &task.Result{Output: map[string]any{"x": "(sensitive)"}}}
	ev, err := New(TransitionID("task-1", 9), task.EventTaskCompleted, TaskAt(row, tr), done)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "evt-task-1-9" || ev.Org != "o" || ev.AgentID != "a" || ev.RunnerID != "r" || !ev.OccurredAt.Equal(done) {
		t.Fatalf("event %+v", ev)
	}
	var body api.Event
	if err := json.Unmarshal(ev.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != ev.ID || body.Type != task.EventTaskCompleted || body.Task == nil || body.Task.Status != task.StatusCompleted ||
		body.Task.Progress != 100 || body.Task.Result == nil || body.Task.Result.Output["x"] != "(sensitive)" || body.OccurredAt != "2026-01-01T00:01:00.000Z" {
		t.Fatalf("body %s", ev.Body)
	}
	// A running task's event has no result.
	running, _ := New("e2", task.EventTaskRunning, TaskAt(row, store.Transition{Status: task.StatusRunning, UpdatedAt: done}), done)
	if strings.Contains(string(running.Body), `"result"`) {
		t.Fatalf("running event has a result: %s", running.Body)
	}
}

func TestSSERoundTrip(t *testing.T) {
	var buf strings.Builder
	w := NewSSEWriter(&buf, nil)
	_ = w.Event("log", "1", []byte(`{"a":1}`))
	_ = w.Comment("keep-alive")
	_ = w.Event("status", "1:status", []byte("two\nlines"))
	_ = w.Event("end", "", []byte(`{}`))
	r := NewSSEReader(strings.NewReader(buf.String()))
	var got []string
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s|%s|%s|%s", ev.Name, ev.ID, ev.Data, r.LastID()))
	}
	want := []string{`log|1|{"a":1}|1`, "status|1:status|two\nlines|1:status", "end||{}|1:status"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestHubWakesFollowersOfWhatChanged(t *testing.T) {
	h := NewHub()
	a, b, o := h.FollowTask("a"), h.FollowTask("b"), h.FollowOrg("org")
	h.Notify(store.Change{TaskID: "a"})
	h.Notify(store.Change{TaskID: "a"}) // coalesces
	woke := func(f *Follower) bool {
		select {
		case <-f.C:
			return true
		default:
			return false
		}
	}
	if !woke(a) || woke(a) || woke(b) || woke(o) {
		t.Fatal("task change")
	}
	h.Notify(store.Change{Org: "org"})
	if woke(a) || !woke(o) {
		t.Fatal("org change")
	}
	h.Notify(store.Change{All: true})
	if !woke(a) || !woke(b) || !woke(o) {
		t.Fatal("all")
	}
	a.Close()
	b.Close()
	o.Close()
	if n := h.Followers(); n != 0 {
		t.Fatalf("%d followers after Close", n)
	}
}

// receiver is a real local HTTP receiver for Sender tests.
func receiver(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// localSender is a Sender that may reach loopback (the test receivers).
func localSender(t *testing.T, timeout time.Duration) *Sender {
	t.Helper()
	allow, err := ParseAllowListFlag("--webhook-allow", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return NewSender(timeout, &Guard{Allow: allow})
}

func TestSenderSignsAndReportsTheStatus(t *testing.T) {
	secret := []byte("whsec_test-secret-123")
	var got atomic.Value
	u := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := VerifyRequest(r, secret, 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got.Store(r.Header.Get(HeaderEvent) + " " + r.Header.Get(HeaderDelivery) + " " + r.Header.Get("Content-Type") + " " + string(body))
	})
	s := localSender(t, 0)
	out := s.Send(context.Background(), Message{URL: u, Secret: secret, Type: task.EventTaskFailed, ID: "evt-x-1", Body: []byte(`{"id":"evt-x-1"}`)})
	if !out.Delivered() || out.StatusCode != 200 || out.Latency <= 0 {
		t.Fatalf("outcome %+v", out)
	}
	if g := got.Load(); g != `task.failed evt-x-1 application/json {"id":"evt-x-1"}` {
		t.Fatalf("receiver saw %v", g)
	}
	// The wrong secret: the receiver's 401 is a failure with its status
	// code, not its answer.
	out = s.Send(context.Background(), Message{URL: u, Secret: []byte("nope-nope-nope-nope"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
	if out.Delivered() || out.StatusCode != 401 || strings.Contains(out.Err.Error(), "signature") || out.Err.Error() != "receiver answered 401 Unauthorized" {
		t.Fatalf("outcome %+v", out)
	}
	if strings.Contains(out.Err.Error(), "nope") || strings.Contains(out.Err.Error(), u) {
		t.Fatalf("error repeats the secret or URL: %v", out.Err)
	}
}

func TestSenderFollowsNoRedirect(t *testing.T) {
	var hits atomic.Int32
	target := receiver(t, func(http.ResponseWriter, *http.Request) { hits.Add(1) })
	u := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	})
	out := localSender(t, 0).Send(context.Background(), Message{URL: u, Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
	if out.Delivered() || out.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(out.Err.Error(), "redirects are not followed") || hits.Load() != 0 {
		t.Fatalf("outcome %+v, target hit %d times", out, hits.Load())
	}
}

func TestSenderGivesUpOnAHangingReceiver(t *testing.T) {
	release := make(chan struct{})
	u := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	out := localSender(t, 300*time.Millisecond).Send(context.Background(), Message{URL: u, Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
	if out.Delivered() || out.StatusCode != 0 || !strings.Contains(out.Err.Error(), "no answer within") {
		t.Fatalf("outcome %+v", out)
	}
	// Nobody listening.
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	out = localSender(t, 0).Send(context.Background(), Message{URL: dead, Secret: []byte("x"), Type: task.EventPing, ID: "p", Body: []byte(`{}`)})
	if out.Delivered() || !strings.Contains(out.Err.Error(), "connection failed") || strings.Contains(out.Err.Error(), dead) {
		t.Fatalf("outcome %+v", out)
	}
}
