package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

const validBody = `{"name":"n","agent_id":"agent-1","runner_id":"local"}`

// seedRows stores the tasks the table tests address.
func seedRows(t *testing.T, ts *testServer) {
	t.Helper()
	ts.addTask(t, store.Task{ID: "task-a1", Org: "org-a", AgentID: "agent-1", RunnerID: "local"})
	ts.addTask(t, store.Task{ID: "task-a2", Org: "org-a", AgentID: "agent-2", RunnerID: "local"})
	ts.addTask(t, store.Task{ID: "task-a3", Org: "org-a", AgentID: "agent-1", RunnerID: "local", Status: task.StatusRunning})
	ts.addTask(t, store.Task{ID: "task-b1", Org: "org-b", AgentID: "agent-1", RunnerID: "local"})
}

// TestErrors walks every validation rule and error code of the API through
// the real router: each answer must be the seed's error body, its code must
// match its status, and details must name what was wrong.
func TestErrors(t *testing.T) {
	ts := newTestServer(t, true, func(o *Options) { o.MaxBodyBytes = 4096 })
	seedRows(t, ts)
	admin, viewer, operator, agent := "k-admin-a", "k-viewer-a", "k-operator-a", "k-agent-a"
	ct := func(v string) [][2]string { return [][2]string{{"Content-Type", v}} }
	idem := func(vs ...string) [][2]string {
		h := [][2]string{}
		for _, v := range vs {
			h = append(h, [2]string{HeaderIdempotencyKey, v})
		}
		return h
	}
	body := func(extra string) string { return `{"name":"n","agent_id":"agent-1","runner_id":"local"` + extra + `}` }
	cases := []struct {
		name   string
		r      req
		status int
		detail string // "key=value" expected in details ("" for none)
	}{
		// 401
		{"no key", req{method: "GET", path: "/api/v1/tasks"}, 401, ""},
		{"basic scheme", req{method: "GET", path: "/api/v1/tasks", header: [][2]string{{"Authorization", "Basic abc"}}}, 401, ""},
		{"scheme without key", req{method: "GET", path: "/api/v1/tasks", header: [][2]string{{"Authorization", "UserKey"}}}, 401, ""},
		{"unknown key", req{method: "GET", path: "/api/v1/tasks", key: "nope"}, 401, ""},
		{"unknown bearer", req{method: "GET", path: "/api/v1/tasks", header: [][2]string{{"Authorization", "Bearer nope"}}}, 401, ""},
		{"no key create", req{method: "POST", path: "/api/v1/tasks", body: validBody}, 401, ""},
		{"no key get", req{method: "GET", path: "/api/v1/tasks/task-a1"}, 401, ""},
		{"no key status", req{method: "GET", path: "/api/v1/tasks/task-a1/status"}, 401, ""},
		{"no key logs", req{method: "GET", path: "/api/v1/tasks/task-a1/logs"}, 401, ""},
		{"no key cancel", req{method: "PUT", path: "/api/v1/tasks/task-a1/cancel"}, 401, ""},
		{"no key agent list", req{method: "GET", path: "/api/v1/tasks/agent/agent-1"}, 401, ""},
		{"no key runner list", req{method: "GET", path: "/api/v1/tasks/runner/local"}, 401, ""},

		// 403
		{"viewer create", req{method: "POST", path: "/api/v1/tasks", key: viewer, body: validBody}, 403, ""},
		{"viewer cancel", req{method: "PUT", path: "/api/v1/tasks/task-a3/cancel", key: viewer}, 403, ""},
		{"operator force", req{method: "PUT", path: "/api/v1/tasks/task-a3/cancel?force=true", key: operator}, 403, ""},
		{"agent key, other agent", req{method: "POST", path: "/api/v1/tasks", key: agent, body: `{"name":"n","agent_id":"agent-2","runner_id":"local"}`}, 403, "field=agent_id"},

		// 404
		{"unknown route", req{method: "GET", path: "/api/v1/nope", key: admin}, 404, ""},
		{"unknown root route", req{method: "GET", path: "/nope"}, 404, ""},
		{"trailing slash", req{method: "GET", path: "/api/v1/tasks/", key: admin}, 404, ""},
		{"unknown task", req{method: "GET", path: "/api/v1/tasks/task-nope", key: admin}, 404, "taskId=task-nope"},
		{"invalid task id", req{method: "GET", path: "/api/v1/tasks/..%20x", key: admin}, 404, ""},
		{"long task id", req{method: "GET", path: "/api/v1/tasks/" + strings.Repeat("t", 200), key: admin}, 404, ""},
		{"other org get", req{method: "GET", path: "/api/v1/tasks/task-b1", key: admin}, 404, "taskId=task-b1"},
		{"other org status", req{method: "GET", path: "/api/v1/tasks/task-b1/status", key: admin}, 404, ""},
		{"other org logs", req{method: "GET", path: "/api/v1/tasks/task-b1/logs", key: admin}, 404, ""},
		{"other org cancel", req{method: "PUT", path: "/api/v1/tasks/task-b1/cancel", key: admin}, 404, ""},
		{"other org cancel, viewer", req{method: "PUT", path: "/api/v1/tasks/task-b1/cancel", key: viewer}, 404, ""},
		{"other org force, operator", req{method: "PUT", path: "/api/v1/tasks/task-b1/cancel?force=true", key: operator}, 404, ""},
		{"other agent get", req{method: "GET", path: "/api/v1/tasks/task-a2", key: agent}, 404, ""},
		{"other agent status", req{method: "GET", path: "/api/v1/tasks/task-a2/status", key: agent}, 404, ""},
		{"other agent logs", req{method: "GET", path: "/api/v1/tasks/task-a2/logs", key: agent}, 404, ""},
		{"other agent cancel", req{method: "PUT", path: "/api/v1/tasks/task-a2/cancel", key: agent}, 404, ""},

		// 405
		{"delete task", req{method: "DELETE", path: "/api/v1/tasks/task-a1", key: admin}, 405, ""},
		{"post cancel", req{method: "POST", path: "/api/v1/tasks/task-a1/cancel", key: admin}, 405, ""},
		{"patch tasks", req{method: "PATCH", path: "/api/v1/tasks", key: admin}, 405, ""},
		{"post healthz", req{method: "POST", path: "/healthz"}, 405, ""},

		// 409
		{"cancel completed", req{method: "PUT", path: "/api/v1/tasks/task-a1/cancel", key: admin}, 409, "status=completed"},
		{"force without cancel", req{method: "PUT", path: "/api/v1/tasks/task-a3/cancel?force=true", key: admin}, 409, "status=running"},

		// 413, 415
		{"too large", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"description":"` + strings.Repeat("d", 5000) + `"`)}, 413, ""},
		{"text/plain", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: ct("text/plain")}, 415, "header=Content-Type"},
		{"no content type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: ct("")}, 415, "header=Content-Type"},
		{"bad media type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: ct("application/json;;")}, 415, "header=Content-Type"},
		{"json with charset", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{`, header: ct("application/json; charset=utf-8")}, 400, "field=body"},

		// 400: body
		{"empty body", req{method: "POST", path: "/api/v1/tasks", key: admin, header: ct("application/json")}, 400, "field=body"},
		{"malformed json", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":`}, 400, "field=body"},
		{"array body", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `[]`}, 400, "field=body"},
		{"trailing data", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody + `{}`}, 400, "field=body"},
		{"missing name", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"agent_id":"a","runner_id":"r"}`}, 400, "field=name"},
		{"blank name", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":" ","agent_id":"a","runner_id":"r"}`}, 400, "field=name"},
		{"name type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":1,"agent_id":"a","runner_id":"r"}`}, 400, "field=name"},
		{"missing agent", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":"n","runner_id":"r"}`}, 400, "field=agent_id"},
		{"agent charset", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":"n","agent_id":"a/b","runner_id":"r"}`}, 400, "field=agent_id"},
		{"agent length", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":"n","agent_id":"` + strings.Repeat("a", 129) + `","runner_id":"r"}`}, 400, "field=agent_id"},
		{"missing runner", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":"n","agent_id":"a"}`}, 400, "field=runner_id"},
		{"runner type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: `{"name":"n","agent_id":"a","runner_id":7}`}, 400, "field=runner_id"},
		{"description type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"description":[]`)}, 400, "field=description"},
		{"metadata type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"metadata":"x"`)}, 400, "field=metadata"},
		{"parameters type", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"parameters":[1]`)}, 400, "field=parameters"},
		{"unknown field", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"priority":1`)}, 400, "field=priority"},
		{"bad action", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"parameters":{"action":"x"}`)}, 400, "field=parameters.action"},
		{"bad timeout", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"parameters":{"timeout":5}`)}, 400, "field=parameters.timeout"},
		{"bad file", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"parameters":{"files":{"../x.tf":""}}`)}, 400, "field=parameters.files.../x.tf"},
		{"bad parallelism", req{method: "POST", path: "/api/v1/tasks", key: admin, body: body(`,"parameters":{"parallelism":"2"}`)}, 400, "field=parameters.parallelism"},

		// 400: headers
		{"empty idempotency key", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: idem("")}, 400, "header=Idempotency-Key"},
		{"long idempotency key", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: idem(strings.Repeat("k", 256))}, 400, "header=Idempotency-Key"},
		{"non-ascii idempotency key", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: idem("clé")}, 400, "header=Idempotency-Key"},
		{"control idempotency key", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: idem("a\tb")}, 400, "header=Idempotency-Key"},
		{"two idempotency keys", req{method: "POST", path: "/api/v1/tasks", key: admin, body: validBody, header: idem("a", "b")}, 400, "header=Idempotency-Key"},

		// 400: query and path parameters
		{"limit 0", req{method: "GET", path: "/api/v1/tasks?limit=0", key: admin}, 400, "parameter=limit"},
		{"limit too big", req{method: "GET", path: "/api/v1/tasks?limit=1001", key: admin}, 400, "parameter=limit"},
		{"page 0", req{method: "GET", path: "/api/v1/tasks?page=0", key: admin}, 400, "parameter=page"},
		{"page word", req{method: "GET", path: "/api/v1/tasks?page=two", key: admin}, 400, "parameter=page"},
		{"sort name", req{method: "GET", path: "/api/v1/tasks?sort=name", key: admin}, 400, "parameter=sort"},
		{"order up", req{method: "GET", path: "/api/v1/tasks?order=up", key: admin}, 400, "parameter=order"},
		{"status done", req{method: "GET", path: "/api/v1/tasks?status=done", key: admin}, 400, "parameter=status"},
		{"agent charset", req{method: "GET", path: "/api/v1/tasks?agent=a%20b", key: admin}, 400, "parameter=agent"},
		{"runner charset", req{method: "GET", path: "/api/v1/tasks?runner=..", key: admin}, 400, "parameter=runner"},
		{"unknown parameter", req{method: "GET", path: "/api/v1/tasks?foo=1", key: admin}, 400, "parameter=foo"},
		{"repeated parameter", req{method: "GET", path: "/api/v1/tasks?limit=1&limit=2", key: admin}, 400, "parameter=limit"},
		{"malformed query", req{method: "GET", path: "/api/v1/tasks?limit=%zz", key: admin}, 400, "parameter=query"},
		{"agent path charset", req{method: "GET", path: "/api/v1/tasks/agent/a%20b", key: admin}, 400, "parameter=agentId"},
		{"runner path charset", req{method: "GET", path: "/api/v1/tasks/runner/-r", key: admin}, 400, "parameter=runnerId"},
		{"agent path vs query", req{method: "GET", path: "/api/v1/tasks/agent/agent-1?agent=agent-2", key: admin}, 400, "parameter=agentId"},
		{"agent list sort", req{method: "GET", path: "/api/v1/tasks/agent/agent-1?sort=x", key: admin}, 400, "parameter=sort"},
		{"runner list limit", req{method: "GET", path: "/api/v1/tasks/runner/local?limit=-1", key: admin}, 400, "parameter=limit"},
		{"log level", req{method: "GET", path: "/api/v1/tasks/task-a1/logs?level=fatal", key: admin}, 400, "parameter=level"},
		{"log start", req{method: "GET", path: "/api/v1/tasks/task-a1/logs?start_time=yesterday", key: admin}, 400, "parameter=start_time"},
		{"log end before start", req{method: "GET", path: "/api/v1/tasks/task-a1/logs?start_time=2026-01-02T00:00:00Z&end_time=2026-01-01T00:00:00Z", key: admin}, 400, "parameter=end_time"},
		{"log limit", req{method: "GET", path: "/api/v1/tasks/task-a1/logs?limit=10001", key: admin}, 400, "parameter=limit"},
		{"log cursor", req{method: "GET", path: "/api/v1/tasks/task-a1/logs?cursor=x", key: admin}, 400, "parameter=cursor"},
		{"log unknown", req{method: "GET", path: "/api/v1/tasks/task-a1/logs?tail=1", key: admin}, 400, "parameter=tail"},
		{"cancel force value", req{method: "PUT", path: "/api/v1/tasks/task-a3/cancel?force=maybe", key: admin}, 400, "parameter=force"},
		{"cancel unknown", req{method: "PUT", path: "/api/v1/tasks/task-a3/cancel?now=1", key: admin}, 400, "parameter=now"},
		{"policy does not compile", req{method: "PUT", path: "/api/v1/policies/broken", key: admin, body: `{"rego":"package broken\n\ndeny contains msg if {\n"}`}, 400, ""},
		{"policy name", req{method: "PUT", path: "/api/v1/policies/-x", key: admin, body: `{"rego":"package x\n"}`}, 400, "parameter=name"},
		{"policy body field", req{method: "PUT", path: "/api/v1/policies/x", key: admin, body: `{"rego":"package x\n","source":"dir:/"}`}, 400, "field=body"},
		{"policy viewer", req{method: "PUT", path: "/api/v1/policies/x", key: viewer, body: `{"rego":"package x\n"}`}, 403, ""},
		{"evaluate stage", req{method: "POST", path: "/api/v1/policies/evaluate", key: viewer, body: `{"stage":"later","task":{}}`}, 400, "field=stage"},
		{"evaluate task", req{method: "POST", path: "/api/v1/policies/evaluate", key: viewer, body: `{"stage":"pre_plan","task":{"name":"n"}}`}, 400, "field=task.agent_id"},
		{"evaluate plan", req{method: "POST", path: "/api/v1/policies/evaluate", key: viewer, body: `{"stage":"post_plan","task":{"name":"n","agent_id":"a","runner_id":"r"}}`}, 400, "field=plan"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := ts.do(t, c.r)
			if w.Code != c.status {
				t.Fatalf("%s %s: status %d, want %d: %s", c.r.method, c.r.path, w.Code, c.status, w.Body)
			}
			e := decodeError(t, w)
			seen[e.Error.Code] = true
			if e.Error.Message == "" {
				t.Fatal("empty message")
			}
			if c.detail != "" {
				k, v, _ := strings.Cut(c.detail, "=")
				if got := e.Error.Details[k]; got != v {
					t.Fatalf("details %v, want %s", e.Error.Details, c.detail)
				}
			}
			checkNoLeak(t, w.Body.String())
			switch w.Code {
			case 401:
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case 405:
				if w.Header().Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			}
			if w.Header().Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
		})
	}
	// The codes not reachable without a failing dependency are covered by
	// TestPanicIsInternal and TestUnavailable; too_many_requests by the
	// throttle's and the stream cap's tests (hardening_test.go).
	for code := range errorCodes {
		if !seen[code] && code != codeInternal && code != codeUnavailable && code != codeTooManyRequests {
			t.Errorf("no case answers %s", code)
		}
	}
}

// checkNoLeak fails when an error body carries internals: stack traces,
// source paths, driver or engine names.
func checkNoLeak(t testing.TB, body string) {
	t.Helper()
	for _, bad := range []string{"goroutine", ".go:", "runtime.", "panic", "sqlite", "SQL", "serviceerror", "rpc error", "k-admin", "k-viewer", "k-operator", "k-agent"} {
		if strings.Contains(body, bad) {
			t.Errorf("error body leaks %q: %s", bad, body)
		}
	}
}

func TestMethodNotAllowedListsMethods(t *testing.T) {
	ts := newTestServer(t, false)
	w := ts.do(t, req{method: "PATCH", path: "/api/v1/tasks", key: "k-admin-a"})
	if allow := w.Header().Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow %q", allow)
	}
}

func TestPanicIsInternal(t *testing.T) {
	ts := newTestServer(t, false)
	ts.router.GET("/api/v1/test-panic", func(*gin.Context) { panic("secret detail: k-admin-a at /src/x.go:12") })
	w := ts.do(t, req{method: "GET", path: "/api/v1/test-panic", header: [][2]string{{"X-Request-ID", "req-boom-1"}}})
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", w.Code)
	}
	e := decodeError(t, w)
	if e.Error.Code != codeInternal || !strings.Contains(e.Error.Message, "req-boom-1") {
		t.Fatalf("%+v", e)
	}
	checkNoLeak(t, w.Body.String())
	if strings.Contains(w.Body.String(), "secret detail") {
		t.Fatalf("panic value in the body: %s", w.Body)
	}
	// The server still serves.
	if w := ts.do(t, req{method: "GET", path: "/healthz"}); w.Code != 200 {
		t.Fatalf("after a panic: %d", w.Code)
	}
}

func TestUnavailable(t *testing.T) {
	ts := newTestServer(t, true)
	ts.fake.startErr = serviceerror.NewUnavailable("connection refused to 10.0.0.1:7233")
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-admin-a", body: validBody})
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if e := decodeError(t, w); e.Error.Code != codeUnavailable || strings.Contains(w.Body.String(), "10.0.0.1") {
		t.Fatalf("%s", w.Body)
	}
}

// TestCreate checks a create answers the seed's create response.
func TestCreate(t *testing.T) {
	ts := newTestServer(t, true)
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-agent-a", body: `{
	  "name": "Deploy Application", "description": "Deploy application to production environment",
	  "agent_id": "agent-1", "runner_id": "runner-789",
	  "metadata": {"environment": "production", "version": "1.2.0", "priority": "high"},
	  "parameters": {"app_name": "my-app", "deploy_strategy": "rolling", "sensitive_variables": {"token": "s3cret"}}}`})
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "name", "description", "status", "progress", "created_at", "updated_at", "started_at", "completed_at", "agent_id", "runner_id", "metadata"}
	if len(got) != len(want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Fatalf("field %s missing: %v", k, got)
		}
	}
	if got["status"] != "pending" || got["progress"] != 0.0 || got["started_at"] != nil || got["completed_at"] != nil {
		t.Fatalf("%v", got)
	}
	if _, err := time.Parse(time.RFC3339, got["created_at"].(string)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(w.Body.String(), "s3cret") {
		t.Fatal("secret echoed")
	}
	id := got["id"].(string)
	o := ts.fake.started[id]
	// The Web UI's memo (name, agent, runner) and summary; no request
	// digest without an Idempotency-Key.
	if o.TaskQueue != task.ControlPlaneTaskQueue || len(o.Memo) != 3 || o.Memo["name"] != "Deploy Application" ||
		o.Memo["agent"] != "agent-1" || o.Memo["runner"] != "runner-789" || o.StaticSummary != "Deploy Application (agent agent-1)" ||
		!strings.Contains(o.StaticDetails, "runner: `runner-789`") {
		t.Fatalf("start options %+v", o)
	}
	// Listable at once, and visible to the agent's key.
	w = ts.do(t, req{method: "GET", path: "/api/v1/tasks/" + id, key: "k-agent-a"})
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
