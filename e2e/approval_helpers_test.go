package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Keys of the plan review tests' own `terratask dev`.
var reviewKeys = []principal{
	{"admin-r", "raw-review-admin-7c1e", "default", "admin", ""},
	{"op-one", "raw-review-op-one-2b9d", "default", "operator", ""},
	{"op-two", "raw-review-op-two-5e4a", "default", "operator", ""},
	{"op-three", "raw-review-op-three-9d1b", "default", "operator", ""},
	{"viewer-r", "raw-review-viewer-8f3c", "default", "viewer", ""},
	{"bot-r", "raw-review-bot-1a6f", "default", "operator", "agent-review"},
	{"other-admin", "raw-review-other-4d2b", "other", "admin", ""},
}

func reviewKey(name string) string {
	for _, p := range reviewKeys {
		if p.name == name {
			return p.raw
		}
	}
	panic(name)
}

// reviewBody is a task of the review fixture: a terraform_data db that is
// replaced when size changes, a web resource, a sensitive variable.
func reviewBody(t testing.TB, name, workspace string, size int, params map[string]any) map[string]any {
	p := map[string]any{"files": fixture(t, "review"), "workspace": workspace, "size": size,
		"sensitive_variables": map[string]any{"password": "pw-e2e-S3cret-" + workspace}}
	for k, v := range params {
		p[k] = v
	}
	return map[string]any{"name": name, "agent_id": "agent-review", "runner_id": "local", "parameters": p}
}

// createAs creates a task with key.
func createAs(t testing.TB, p *devProc, key string, body map[string]any) Task {
	t.Helper()
	b, _ := json.Marshal(body)
	r := p.call(t, http.MethodPost, "/api/v1/tasks", key, b)
	if r.code != http.StatusOK {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var tk Task
	if err := json.Unmarshal(r.body, &tk); err != nil {
		t.Fatal(err)
	}
	return tk
}

// decide approves or rejects with key; body may be nil.
func decide(t testing.TB, p *devProc, key, id, verb string, body []byte) reply {
	t.Helper()
	return p.call(t, http.MethodPut, "/api/v1/tasks/"+id+"/"+verb, key, body)
}

// waitWaiting waits until the task waits for approval.
func waitWaiting(t testing.TB, p *devProc, id string) Status {
	t.Helper()
	seen := p.waitStatus(t, id, 3*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("task %s ended %+v before waiting for approval\n%v", id, s, p.logs(t, id, "?level=warn,error"))
		}
		return s.Status == "waiting_approval"
	})
	return seen[len(seen)-1]
}

func waitEnd(t testing.TB, p *devProc, id string) []Status {
	t.Helper()
	return p.waitStatus(t, id, 3*time.Minute, terminal)
}

func logText(t testing.TB, p *devProc, id string) string {
	var b strings.Builder
	for _, l := range p.logs(t, id, "?limit=10000") {
		b.WriteString(l.Message + "\n")
	}
	return b.String()
}
