package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The seed's create example, byte for byte, with runner_id "local" (the
// dev runner) for "runner-789".
const seedCreateBody = `{
    "name": "Deploy Application",
    "description": "Deploy application to production environment",
    "agent_id": "agent-456",
    "runner_id": "local",
    "metadata": {
      "environment": "production",
      "version": "1.2.0",
      "priority": "high"
    },
    "parameters": {
      "app_name": "my-app",
      "deploy_strategy": "rolling"
    }
  }`

// Field sets of the seed's examples.
var (
	seedTaskFields    = []string{"id", "name", "description", "status", "progress", "created_at", "updated_at", "started_at", "completed_at", "agent_id", "runner_id", "metadata"}
	seedDetailFields  = append(append([]string{}, seedTaskFields...), "result")
	seedSummaryFields = []string{"id", "name", "status", "progress", "created_at", "updated_at"}
	seedStatusFields  = []string{"id", "status", "progress", "started_at", "updated_at", "metadata"}
	seedCancelFields  = []string{"id", "status", "cancelled_at", "cancelled_by"}
	// DESIGN: a cancelled task also carries cancelled_at and cancelled_by,
	// and a task whose plan was decided on who decided, when, and the
	// comment.
	cancelledFields = []string{"cancelled_at", "cancelled_by"}
	decidedFields   = []string{"approved_by", "approved_at", "rejected_by", "rejected_at", "approval_comment"}
	statuses        = map[string]bool{"pending": true, "running": true, "waiting_approval": true, "cancelling": true,
		"completed": true, "failed": true, "cancelled": true, "rejected": true}
)

// checkTask checks a Task Object of the seed, field by field.
func checkTask(t *testing.T, what string, m map[string]any, fields []string) {
	t.Helper()
	// policy: the task's policy check, once its org has policies (the
	// shared dev's org may, while the OpenAPI walk runs).
	fieldSet(t, what, m, fields, append(append(append([]string{}, cancelledFields...), decidedFields...), "policy")...)
	for _, k := range []string{"id", "name", "description", "agent_id", "runner_id"} {
		if _, ok := m[k]; ok {
			isString(t, what+"."+k, m[k])
		}
	}
	if s := isString(t, what+".status", m["status"]); !statuses[s] {
		t.Errorf("%s: status %q", what, s)
	}
	if p := isInt(t, what+".progress", m["progress"]); p < 0 || p > 100 {
		t.Errorf("%s: progress %d", what, p)
	}
	rfc3339(t, what+".created_at", m["created_at"])
	rfc3339(t, what+".updated_at", m["updated_at"])
	for _, k := range []string{"started_at", "completed_at"} {
		if _, ok := m[k]; ok {
			nullOrTime(t, what+"."+k, m[k])
		}
	}
	if _, ok := m["metadata"]; ok {
		isObject(t, what+".metadata", m["metadata"])
	}
	if _, ok := m["cancelled_at"]; ok {
		rfc3339(t, what+".cancelled_at", m["cancelled_at"])
		isString(t, what+".cancelled_by", m["cancelled_by"])
	}
	for _, who := range []string{"approved", "rejected"} {
		if _, ok := m[who+"_at"]; ok {
			rfc3339(t, what+"."+who+"_at", m[who+"_at"])
			isString(t, what+"."+who+"_by", m[who+"_by"])
		}
	}
	if r, ok := m["result"]; ok {
		res := isObject(t, what+".result", r)
		fieldSet(t, what+".result", res, []string{"output", "error"})
		isObject(t, what+".result.output", res["output"])
		if res["error"] != nil {
			e := isObject(t, what+".result.error", res["error"])
			fieldSet(t, what+".result.error", e, []string{"code", "message"}, "details")
		}
	}
}

// TestSeedConformance replays every curl example of the seed against the
// shared `terratask dev` and checks each answer's status and shape field by
// field against the seed's example.
func TestSeedConformance(t *testing.T) {
	t.Parallel()
	key := shared.key

	// POST /api/v1/tasks, the seed's body.
	r := shared.call(t, http.MethodPost, "/api/v1/tasks", key, []byte(seedCreateBody))
	if r.code != http.StatusOK {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	created := r.object(t)
	checkTask(t, "create", created, seedTaskFields)
	if _, ok := created["cancelled_at"]; ok {
		t.Error("create: cancelled_at on a new task")
	}
	id := created["id"].(string)
	want := map[string]any{
		"name": "Deploy Application", "description": "Deploy application to production environment",
		"status": "pending", "agent_id": "agent-456", "runner_id": "local", "started_at": nil, "completed_at": nil,
	}
	for k, v := range want {
		if created[k] != v {
			t.Errorf("create: %s is %v, want %v", k, created[k], v)
		}
	}
	if isInt(t, "progress", created["progress"]) != 0 || created["created_at"] != created["updated_at"] {
		t.Errorf("create: %v", created)
	}
	var sent map[string]any
	_ = json.Unmarshal([]byte(seedCreateBody), &sent)
	if !reflect.DeepEqual(created["metadata"], sent["metadata"]) {
		t.Errorf("create: metadata %v, want %v", created["metadata"], sent["metadata"])
	}

	// GET /api/v1/tasks: a bare array of Task Objects without result.
	r = shared.call(t, http.MethodGet, "/api/v1/tasks", key, nil)
	if r.code != http.StatusOK || r.header.Get("X-Total-Count") == "" {
		t.Fatalf("list: %d %v", r.code, r.header)
	}
	list := r.array(t)
	if len(list) == 0 || len(list) > 50 {
		t.Fatalf("list: %d tasks (default limit 50)", len(list))
	}
	for _, m := range list {
		checkTask(t, "list", m, seedTaskFields)
	}
	found := false
	r = shared.call(t, http.MethodGet, "/api/v1/tasks?agent=agent-456&limit=1000", key, nil)
	for _, m := range r.array(t) {
		if m["id"] == id {
			found = true
			fieldSet(t, "list entry", m, seedTaskFields)
		}
	}
	if !found {
		t.Fatalf("list misses %s", id)
	}

	// GET /api/v1/tasks/{taskId}: the Task Object with result.
	r = shared.call(t, http.MethodGet, "/api/v1/tasks/"+id, key, nil)
	if r.code != http.StatusOK {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	checkTask(t, "get", r.object(t), seedDetailFields)

	// GET /api/v1/tasks/{taskId}/status.
	checkStatus := func() map[string]any {
		r := shared.call(t, http.MethodGet, "/api/v1/tasks/"+id+"/status", key, nil)
		if r.code != http.StatusOK {
			t.Fatalf("status: %d %s", r.code, r.body)
		}
		m := r.object(t)
		fieldSet(t, "status", m, seedStatusFields)
		if m["id"] != id || !statuses[isString(t, "status.status", m["status"])] {
			t.Fatalf("status %v", m)
		}
		isInt(t, "status.progress", m["progress"])
		nullOrTime(t, "status.started_at", m["started_at"])
		rfc3339(t, "status.updated_at", m["updated_at"])
		meta := isObject(t, "status.metadata", m["metadata"])
		isString(t, "status.metadata.current_step", meta["current_step"])
		isInt(t, "status.metadata.steps_completed", meta["steps_completed"])
		if isInt(t, "status.metadata.total_steps", meta["total_steps"]) != 4 {
			t.Errorf("total_steps %v", meta["total_steps"])
		}
		return m
	}
	checkStatus()
	shared.waitStatus(t, id, 2*time.Minute, terminal)
	if final := checkStatus(); final["status"] != "completed" || isInt(t, "progress", final["progress"]) != 100 {
		t.Fatalf("seed task ended %v\n%s", final, shared.output.String())
	}
	r = shared.call(t, http.MethodGet, "/api/v1/tasks/"+id, key, nil)
	done := r.object(t)
	checkTask(t, "get completed", done, seedDetailFields)
	rfc3339(t, "started_at", done["started_at"])
	rfc3339(t, "completed_at", done["completed_at"])
	if res := done["result"].(map[string]any); res["error"] != nil || res["output"].(map[string]any)["app_name"] != "my-app" {
		t.Errorf("result %v", res)
	}

	// GET /api/v1/tasks/{taskId}/logs.
	r = shared.call(t, http.MethodGet, "/api/v1/tasks/"+id+"/logs", key, nil)
	if r.code != http.StatusOK {
		t.Fatalf("logs: %d %s", r.code, r.body)
	}
	logs := r.object(t)
	fieldSet(t, "logs", logs, []string{"task_id", "logs"})
	entries, ok := logs["logs"].([]any)
	if logs["task_id"] != id || !ok || len(entries) == 0 {
		t.Fatalf("logs %v", logs)
	}
	for i, e := range entries {
		m := isObject(t, "log entry", e)
		fieldSet(t, "log entry", m, []string{"timestamp", "level", "message", "metadata"})
		rfc3339(t, "log timestamp", m["timestamp"])
		if l := isString(t, "level", m["level"]); l != "debug" && l != "info" && l != "warn" && l != "error" {
			t.Fatalf("entry %d level %q", i, l)
		}
		isString(t, "message", m["message"])
		isObject(t, "log metadata", m["metadata"])
	}

	// GET /api/v1/tasks/agent/{agentId} and /runner/{runnerId}: summaries.
	for _, path := range []string{"/api/v1/tasks/agent/agent-456", "/api/v1/tasks/runner/local"} {
		r = shared.call(t, http.MethodGet, path, key, nil)
		if r.code != http.StatusOK || r.header.Get("X-Total-Count") == "" {
			t.Fatalf("%s: %d", path, r.code)
		}
		page := r.array(t)
		if len(page) == 0 {
			t.Fatalf("%s: empty", path)
		}
		for _, m := range page {
			checkTask(t, path, m, seedSummaryFields)
			fieldSet(t, path, m, seedSummaryFields)
		}
	}

	// PUT /api/v1/tasks/{taskId}/cancel, on a task that is still pending.
	r = shared.call(t, http.MethodPost, "/api/v1/tasks", key, parkedBody("to cancel", "agent-456"))
	if r.code != http.StatusOK {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	victim := r.object(t)["id"].(string)
	r = shared.call(t, http.MethodPut, "/api/v1/tasks/"+victim+"/cancel", key, nil)
	if r.code != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.code, r.body)
	}
	c := r.object(t)
	fieldSet(t, "cancel", c, seedCancelFields)
	if c["id"] != victim || (c["status"] != "cancelled" && c["status"] != "cancelling") || c["cancelled_by"] != "dev-admin" {
		t.Fatalf("cancel %v", c)
	}
	rfc3339(t, "cancelled_at", c["cancelled_at"])
	shared.waitStatus(t, victim, time.Minute, terminal)
	r = shared.call(t, http.MethodGet, "/api/v1/tasks/"+victim, key, nil)
	cancelled := r.object(t)
	checkTask(t, "cancelled task", cancelled, append(append([]string{}, seedDetailFields...), cancelledFields...))
	if cancelled["status"] != "cancelled" || cancelled["started_at"] != nil {
		t.Fatalf("cancelled task %v", cancelled)
	}
	// Cancelling it again is a conflict.
	r = shared.call(t, http.MethodPut, "/api/v1/tasks/"+victim+"/cancel", key, nil)
	if code, _, details := r.errorOf(t); r.code != http.StatusConflict || code != "conflict" || details["status"] != "cancelled" {
		t.Fatalf("second cancel: %d %s", r.code, r.body)
	}

	// The seed's "Common Errors" example, exactly.
	r = shared.call(t, http.MethodGet, "/api/v1/tasks/task-123", key, nil)
	if r.code != http.StatusNotFound || string(r.body) != `{"error":{"code":"not_found","message":"Task not found","details":{"taskId":"task-123"}}}` {
		t.Fatalf("not found: %d %s", r.code, r.body)
	}
}

// TestSeedListQueryParameters exercises the seed's list parameters on the
// real server: each filter lists exactly the tasks it names, on each list
// route; limit and page cut the list; a bad value is a 400 naming it.
func TestSeedListQueryParameters(t *testing.T) {
	t.Parallel()
	// Four tasks of two agents of this test alone, on two runners, in four
	// statuses: completed and failed ran on local; pending and cancelled
	// wait for a runner nobody serves.
	one, two := uniqueAgent("agent-lq-1"), uniqueAgent("agent-lq-2")
	type listed struct{ id, agent, runner, status string }
	completed := shared.create(t, map[string]any{"name": "lq completed", "agent_id": one, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "workspace"), "action": "plan"}})
	failed := shared.create(t, map[string]any{"name": "lq failed", "agent_id": two, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "broken")}})
	pending := shared.create(t, map[string]any{"name": "lq pending", "agent_id": one, "runner_id": "nobody-serves-this"})
	defer shared.request(t, http.MethodPut, "/api/v1/tasks/"+pending.ID+"/cancel", nil, nil)
	cancelled := shared.create(t, map[string]any{"name": "lq cancelled", "agent_id": two, "runner_id": "nobody-serves-this"})
	if code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+cancelled.ID+"/cancel", nil, nil); code != 200 {
		t.Fatalf("cancel: %d", code)
	}
	mine := []listed{{completed.ID, one, "local", "completed"}, {failed.ID, two, "local", "failed"},
		{pending.ID, one, "nobody-serves-this", "pending"}, {cancelled.ID, two, "nobody-serves-this", "cancelled"}}
	for _, tk := range mine {
		if tk.status != "pending" {
			if s := shared.waitStatus(t, tk.id, 2*time.Minute, terminal); s[len(s)-1].Status != tk.status {
				t.Fatalf("%s ended %s, want %s", tk.id, s[len(s)-1].Status, tk.status)
			}
		}
	}
	// Each query with the tasks of this test it lists; every task a
	// query lists must match its status filter, whoever's it is.
	for _, c := range []struct {
		query    string
		statuses string // the status filter, for every task listed
		want     []listed
	}{
		{"status=completed", "completed", mine[:1]},
		{"status=running,failed", "running,failed", mine[1:2]},
		{"status=pending,cancelled", "pending,cancelled", mine[2:]},
		{"agent=" + one, "", []listed{mine[0], mine[2]}},
		{"runner=nobody-serves-this&agent=" + two, "", mine[3:]},
		{"runner=local", "", mine[:2]},
		{"status=running,failed&agent=" + two + "&runner=local&sort=status&order=desc", "running,failed", mine[1:2]},
		{"status=completed&agent=" + two, "completed", nil},
	} {
		q, _ := url.ParseQuery(c.query)
		for _, route := range []struct{ base, agent, runner string }{
			{"/api/v1/tasks", "", ""}, {"/api/v1/tasks/agent/" + one, one, ""}, {"/api/v1/tasks/agent/" + two, two, ""}, {"/api/v1/tasks/runner/local", "", "local"},
		} {
			base := route.base
			if route.agent != "" && q.Has("agent") && q.Get("agent") != route.agent || route.runner != "" && q.Has("runner") && q.Get("runner") != route.runner {
				// The path and the query name different IDs: a 400.
				if r := shared.call(t, http.MethodGet, base+"?"+c.query, shared.key, nil); r.code != 400 {
					t.Errorf("%s?%s: %d, want 400 %s", base, c.query, r.code, r.body)
				}
				continue
			}
			var want []string
			for _, tk := range c.want {
				if (route.agent == "" || tk.agent == route.agent) && (route.runner == "" || tk.runner == route.runner) {
					want = append(want, tk.id)
				}
			}
			r := shared.call(t, http.MethodGet, base+"?"+c.query+"&limit=1000", shared.key, nil)
			if r.code != http.StatusOK {
				t.Errorf("%s?%s: %d %s", base, c.query, r.code, r.body)
				continue
			}
			var got []string
			for _, e := range r.array(t) {
				id, status := e["id"].(string), e["status"].(string)
				if c.statuses != "" && !slices.Contains(strings.Split(c.statuses, ","), status) {
					t.Errorf("%s?%s lists %s, which is %s", base, c.query, id, status)
				}
				if slices.ContainsFunc(mine, func(tk listed) bool { return tk.id == id }) {
					got = append(got, id)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s?%s lists %v of this test's tasks, want %v", base, c.query, got, want)
			}
		}
	}
	// limit and page cut the list (newest first by default); the headers
	// count and link the pages.
	for _, c := range []struct {
		query, want, links string
	}{
		{"limit=1", pending.ID, `rel="next"`},
		{"limit=1&page=2", completed.ID, `rel="prev"`},
		{"limit=5", pending.ID + "," + completed.ID, ""},
		{"limit=1&page=3", "", `rel="prev"`},
	} {
		r := shared.call(t, http.MethodGet, "/api/v1/tasks?agent="+one+"&"+c.query, shared.key, nil)
		var ids []string
		for _, e := range r.array(t) {
			ids = append(ids, e["id"].(string))
		}
		if r.code != 200 || strings.Join(ids, ",") != c.want || r.header.Get("X-Total-Count") != "2" {
			t.Errorf("%s: %d %v (X-Total-Count %s), want %s", c.query, r.code, ids, r.header.Get("X-Total-Count"), c.want)
		}
		if link := r.header.Get("Link"); (c.links == "") != (link == "") || !strings.Contains(link, c.links) {
			t.Errorf("%s: Link %q, want %s", c.query, link, c.links)
		}
	}
	for q, param := range map[string]string{"status=nope": "status", "limit=0": "limit", "page=x": "page", "sort=name": "sort", "order=sideways": "order", "agent=a%20b": "agent"} {
		r := shared.call(t, http.MethodGet, "/api/v1/tasks?"+q, shared.key, nil)
		if code, _, details := r.errorOf(t); r.code != 400 || code != "bad_request" || details["parameter"] != param {
			t.Errorf("%s: %d %s", q, r.code, r.body)
		}
	}
}
