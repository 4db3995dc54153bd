package server

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/store"
)

func TestIdempotencyKeyHeader(t *testing.T) {
	for _, c := range []struct {
		values []string // nil: header absent
		want   string
		ok     bool
	}{
		{nil, "", true},
		{[]string{"a"}, "a", true},
		{[]string{"order 42 / retry"}, "order 42 / retry", true},
		{[]string{strings.Repeat("k", 255)}, strings.Repeat("k", 255), true},
		{[]string{"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true},
		{[]string{""}, "", false},
		{[]string{strings.Repeat("k", 256)}, "", false},
		{[]string{"tab\there"}, "", false},
		{[]string{"nul\x00"}, "", false},
		{[]string{"del\x7f"}, "", false},
		{[]string{"é"}, "", false},
		{[]string{"a", "a"}, "", false},
	} {
		h := http.Header{}
		for _, v := range c.values {
			h.Add(HeaderIdempotencyKey, v)
		}
		got, err := idempotencyKey(h)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: got %q, %v", c.values, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), HeaderIdempotencyKey) {
			t.Errorf("%q: error %q does not name the header", c.values, err)
		}
	}
}

var idempotentIDPattern = regexp.MustCompile(`^task-[a-z2-7]{26}$`)

func TestIdempotentTaskID(t *testing.T) {
	k := []byte("server key")
	id := idempotentTaskID(k, "org-a", "key-1")
	if !idempotentIDPattern.MatchString(id) || !validID(id) {
		t.Fatalf("id %q", id)
	}
	if idempotentTaskID(k, "org-a", "key-1") != id {
		t.Fatal("not stable")
	}
	for name, other := range map[string]string{
		"other org":        idempotentTaskID(k, "org-b", "key-1"),
		"other key":        idempotentTaskID(k, "org-a", "key-2"),
		"other server key": idempotentTaskID([]byte("another"), "org-a", "key-1"),
		"shifted NUL":      idempotentTaskID(k, "org-ak", "ey-1"),
	} {
		if other == id {
			t.Errorf("%s: same ID", name)
		}
	}
	if requestDigest(k, []byte(`{"a":1}`)) == requestDigest(k, []byte(`{"a": 1}`)) {
		t.Error("digests of different bodies match")
	}
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"a", "", "order-42", strings.Repeat("x", 255), strings.Repeat("x", 256), "é", "a\nb", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set(HeaderIdempotencyKey, v)
		got, err := idempotencyKey(h)
		printable := len(v) >= 1 && len(v) <= 255
		for i := 0; i < len(v); i++ {
			printable = printable && v[i] >= 0x20 && v[i] <= 0x7e
		}
		if (err == nil) != printable {
			t.Fatalf("%q: accepted=%v, printable=%v", v, err == nil, printable)
		}
		if err != nil {
			return
		}
		if got != v {
			t.Fatalf("%q read as %q", v, got)
		}
		if id := idempotentTaskID([]byte("k"), "org", got); !idempotentIDPattern.MatchString(id) || !validID(id) {
			t.Fatalf("%q: id %q", v, id)
		}
	})
}

// create posts body with an Idempotency-Key.
func (ts *testServer) create(t testing.TB, key, apiKey, body string) (int, map[string]any, http.Header) {
	t.Helper()
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: apiKey, body: body, header: [][2]string{{HeaderIdempotencyKey, key}}})
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out, w.Header()
}

// The Temporal side of idempotent creates runs for real in the end-to-end
// tests; these pin the server's logic on each branch.
func TestIdempotentCreate(t *testing.T) {
	ts := newTestServer(t, true)
	body := `{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"sensitive_variables":{"pw":"hunter2"}}}`
	code, first, h := ts.create(t, "order-1", "k-admin-a", body)
	if code != 200 || h.Get(HeaderIdempotentReplayed) != "" {
		t.Fatalf("%d %v", code, first)
	}
	id := first["id"].(string)
	if want := idempotentTaskID([]byte("test-id-key"), "org-a", "order-1"); id != want {
		t.Fatalf("id %s, want %s", id, want)
	}
	memo := ts.fake.started[id].Memo
	memoCreated, _ := time.Parse(time.RFC3339Nano, memo[memoCreatedAt].(string))
	if memo[memoRequestDigest] != requestDigest([]byte("test-id-key"), []byte(body)) || memoCreated.UTC().Format(time.RFC3339) != first["created_at"] {
		t.Fatalf("memo %v", memo)
	}
	if strings.Contains(memo[memoRequestDigest].(string), "hunter2") {
		t.Fatal("secret in memo")
	}

	// Same key, same body, another key of the same org: the same task.
	code, again, h := ts.create(t, "order-1", "k-operator-a", body)
	if code != 200 || again["id"] != id || again["created_at"] != first["created_at"] || h.Get(HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay %d %v %v", code, again, h)
	}
	// Same key, another body (even only in spacing): 409 naming the header.
	for _, other := range []string{strings.Replace(body, `"n"`, `"m"`, 1), strings.Replace(body, `,"runner_id"`, `, "runner_id"`, 1)} {
		w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-admin-a", body: other, header: [][2]string{{HeaderIdempotencyKey, "order-1"}}})
		if w.Code != http.StatusConflict {
			t.Fatalf("other body: %d %s", w.Code, w.Body)
		}
		if e := decodeError(t, w); e.Error.Code != codeConflict || e.Error.Details["header"] != HeaderIdempotencyKey {
			t.Fatalf("%+v", e)
		}
	}
	// The same key in another org is another task.
	code, otherOrg, _ := ts.create(t, "order-1", "k-admin-b", body)
	if code != 200 || otherOrg["id"] == id {
		t.Fatalf("other org %d %v", code, otherOrg)
	}
	if ts.fake.starts != 2 {
		t.Fatalf("%d workflows started, want 2", ts.fake.starts)
	}
}

func TestIdempotentCreateBeforeTheStoreKnows(t *testing.T) {
	ts := newTestServer(t, true)
	body := `{"name":"late","agent_id":"agent-1","runner_id":"local"}`
	// The first request started the workflow and died before indexing it.
	id := idempotentTaskID([]byte("test-id-key"), "org-a", "k1")
	created := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	_, _ = ts.fake.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id,
		Memo: memoOf(requestDigest([]byte("test-id-key"), []byte(body)), created)}, "")
	code, got, _ := ts.create(t, "k1", "k-admin-a", body)
	if code != 200 || got["id"] != id || got["created_at"] != "2026-02-03T04:05:06Z" || got["status"] != "pending" || got["name"] != "late" {
		t.Fatalf("%d %v", code, got)
	}
	row, err := ts.store.GetTask(context.Background(), "org-a", id)
	if err != nil || !row.CreatedAt.Equal(created) {
		t.Fatalf("indexed %+v %v", row, err)
	}
	if ts.fake.starts != 1 {
		t.Fatalf("%d starts", ts.fake.starts)
	}
}

func TestIdempotentCreatePastRetention(t *testing.T) {
	ts := newTestServer(t, true)
	// The store knows the task; Temporal no longer has its workflow.
	id := idempotentTaskID([]byte("test-id-key"), "org-a", "old")
	ts.addTask(t, store.Task{ID: id, Org: "org-a", AgentID: "agent-1", RunnerID: "local"})
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-admin-a", body: validBody, header: [][2]string{{HeaderIdempotencyKey, "old"}}})
	if w.Code != http.StatusConflict || decodeError(t, w).Error.Details["header"] != HeaderIdempotencyKey {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if ts.fake.starts != 0 {
		t.Fatal("a workflow was started again on a used ID")
	}
}

func TestIdempotentCreateConcurrent(t *testing.T) {
	ts := newTestServer(t, true)
	var wg sync.WaitGroup
	ids := make([]string, 10)
	codes := make([]int, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, got, _ := ts.create(t, "same", "k-admin-a", validBody)
			codes[i] = code
			ids[i], _ = got["id"].(string)
		}()
	}
	wg.Wait()
	for i := range ids {
		if codes[i] != 200 || ids[i] != ids[0] {
			t.Fatalf("codes %v ids %v", codes, ids)
		}
	}
	if ts.fake.starts != 1 {
		t.Fatalf("%d workflows started", ts.fake.starts)
	}
}
