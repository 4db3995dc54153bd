package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// reply is a raw HTTP answer.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

// json decodes the body generically (objects as map[string]any).
func (r reply) json(t testing.TB) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %d %q: %v", r.code, r.body, err)
	}
	return v
}

func (r reply) object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("%d: not an object: %s", r.code, r.body)
	}
	return m
}

func (r reply) array(t testing.TB) []map[string]any {
	t.Helper()
	a, ok := r.json(t).([]any)
	if !ok {
		t.Fatalf("%d: not an array: %s", r.code, r.body)
	}
	out := make([]map[string]any, len(a))
	for i, e := range a {
		if out[i], ok = e.(map[string]any); !ok {
			t.Fatalf("element %d is not an object: %s", i, r.body)
		}
	}
	return out
}

// errorOf checks the body is the seed's error body and returns its fields.
func (r reply) errorOf(t testing.TB) (code, message string, details map[string]any) {
	t.Helper()
	m := r.object(t)
	e, ok := m["error"].(map[string]any)
	if len(m) != 1 || !ok {
		t.Fatalf("%d: not the seed's error body: %s", r.code, r.body)
	}
	keys := sortedKeys(e)
	if strings.Join(keys, ",") != "code,details,message" {
		t.Fatalf("%d: error fields %v: %s", r.code, keys, r.body)
	}
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	details, ok = e["details"].(map[string]any)
	if code == "" || message == "" || !ok {
		t.Fatalf("%d: error body %s", r.code, r.body)
	}
	return code, message, details
}

// call sends a request with a raw body; key "" sends no Authorization.
func (p *devProc) call(t testing.TB, method, path, key string, body []byte, header ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, p.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "UserKey "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fieldSet checks m has exactly the fields want plus any of optional.
func fieldSet(t testing.TB, what string, m map[string]any, want []string, optional ...string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, k := range optional {
		allowed[k] = true
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: field %q missing (fields %v)", what, k, sortedKeys(m))
		}
		allowed[k] = true
	}
	for k := range m {
		if !allowed[k] {
			t.Errorf("%s: unexpected field %q", what, k)
		}
	}
}

// rfc3339 checks v is an RFC 3339 UTC timestamp string.
func rfc3339(t testing.TB, what string, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s: %v is not a string", what, v)
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") {
		t.Fatalf("%s: %q is not an RFC 3339 UTC timestamp", what, s)
	}
	return ts
}

// nullOrTime checks v is null or an RFC 3339 timestamp.
func nullOrTime(t testing.TB, what string, v any) {
	t.Helper()
	if v != nil {
		rfc3339(t, what, v)
	}
}

func isString(t testing.TB, what string, v any) string {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s: %v (%T) is not a string", what, v, v)
	}
	return s
}

func isInt(t testing.TB, what string, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%s: %v (%T) is not a number", what, v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%s: %v is not an integer", what, v)
	}
	return i
}

func isObject(t testing.TB, what string, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %v (%T) is not an object", what, v, v)
	}
	return m
}

// parkedBody is a create body for a runner no process serves: the task
// stays pending (waiting for its runner) until cancelled, and runs no
// Terraform. Tests that need a live task without waiting on one use it.
func parkedBody(name, agent string) []byte {
	b, _ := json.Marshal(map[string]any{"name": name, "agent_id": agent, "runner_id": "nobody-serves-this"})
	return b
}
