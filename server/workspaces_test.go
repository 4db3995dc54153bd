package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Keys of the workspace tests: two agents of org-a, each with an operator
// and an admin key, unbound keys of every role, and org-b's admin.
var workspaceKeys = map[string]auth.Key{
	"w-op-1":    {Name: "op-1", Org: "org-a", Role: auth.RoleOperator, Agent: "agent-1"},
	"w-admin-1": {Name: "admin-1", Org: "org-a", Role: auth.RoleAdmin, Agent: "agent-1"},
	"w-op-2":    {Name: "op-2", Org: "org-a", Role: auth.RoleOperator, Agent: "agent-2"},
	"w-admin-2": {Name: "admin-2", Org: "org-a", Role: auth.RoleAdmin, Agent: "agent-2"},
	"w-viewer":  {Name: "viewer", Org: "org-a", Role: auth.RoleViewer},
	"w-op":      {Name: "op", Org: "org-a", Role: auth.RoleOperator},
	"w-admin":   {Name: "admin", Org: "org-a", Role: auth.RoleAdmin},
	"w-admin-b": {Name: "admin-b", Org: "org-b", Role: auth.RoleAdmin},
}

func newWorkspaceServer(t *testing.T) *testServer {
	t.Helper()
	var keys []auth.Key
	for raw, k := range workspaceKeys {
		k.Hash = auth.HashKey(raw)
		keys = append(keys, k)
	}
	kr, err := auth.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, true, func(o *Options) { o.Keys = kr })
}

// createOn creates a task of agent on workspace ws ("" for its own).
func (ts *testServer) createOn(t *testing.T, key, agent, ws string) (int, errBody, api.Task) {
	t.Helper()
	params := ""
	if ws != "" {
		params = `,"parameters":{"workspace":"` + ws + `"}`
	}
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: key,
		body: `{"name":"n","agent_id":"` + agent + `","runner_id":"r"` + params + `}`})
	if w.Code != http.StatusOK {
		return w.Code, decodeError(t, w), api.Task{}
	}
	var tk api.Task
	if err := json.Unmarshal(w.Body.Bytes(), &tk); err != nil {
		t.Fatal(err)
	}
	return w.Code, errBody{}, tk
}

func (ts *testServer) starts() int {
	ts.fake.mu.Lock()
	defer ts.fake.mu.Unlock()
	return ts.fake.starts
}

// TestWorkspaceBelongsToFirstAgent: the first task on a workspace makes its
// agent the owner; another agent's key gets a 404 naming the workspace and
// nothing starts; an unbound key creating a task of another agent gets a
// 409; a grant lets the other agent in; tasks and plans stay per agent.
func TestWorkspaceBelongsToFirstAgent(t *testing.T) {
	t.Parallel()
	ts := newWorkspaceServer(t)
	ctx := t.Context()

	code, _, first := ts.createOn(t, "w-op-1", "agent-1", "prod")
	if code != 200 {
		t.Fatalf("first task: %d", code)
	}
	w, err := ts.store.GetWorkspace(ctx, "org-a", "prod")
	if err != nil || !reflect.DeepEqual(w.Agents, []string{"agent-1"}) || w.CreatedBy != "op-1" || w.LatestTaskID != first.ID ||
		w.LatestTaskStatus != task.StatusPending {
		t.Fatalf("workspace after the first task: %+v, %v", w, err)
	}

	// Agent 2, operator or admin: 404, nothing started, nothing changed.
	before := ts.starts()
	for _, key := range []string{"w-op-2", "w-admin-2"} {
		code, e, _ := ts.createOn(t, key, "agent-2", "prod")
		if code != 404 || e.Error.Code != "not_found" || e.Error.Details["workspace"] != "prod" ||
			e.Error.Details["field"] != "parameters.workspace" || !strings.Contains(e.Error.Message, "workspace prod") {
			t.Fatalf("%s on another agent's workspace: %d %+v", key, code, e)
		}
	}
	if ts.starts() != before {
		t.Fatal("a refused task was started")
	}
	if w, _ := ts.store.GetWorkspace(ctx, "org-a", "prod"); w.LatestTaskID != first.ID || len(w.Agents) != 1 {
		t.Fatalf("a refused task changed the workspace: %+v", w)
	}
	// An unbound key sees the workspace: 409, naming its agents.
	code, e, _ := ts.createOn(t, "w-op", "agent-2", "prod")
	if code != 409 || e.Error.Code != "conflict" || e.Error.Details["field"] != "agent_id" ||
		fmt.Sprint(e.Error.Details["agents"]) != "[agent-1]" || !strings.Contains(e.Error.Message, "prod") {
		t.Fatalf("unbound key, another agent's task: %d %+v", code, e)
	}
	if code, _, _ := ts.createOn(t, "w-op", "agent-1", "prod"); code != 200 {
		t.Fatalf("unbound key, the owner's task: %d", code)
	}
	// A task's own workspace is its agent's too.
	_, _, own := ts.createOn(t, "w-op-2", "agent-2", "")
	if w, err := ts.store.GetWorkspace(ctx, "org-a", own.ID); err != nil || !reflect.DeepEqual(w.Agents, []string{"agent-2"}) {
		t.Fatalf("a task's own workspace: %+v, %v", w, err)
	}
	if code, _, _ := ts.createOn(t, "w-op-1", "agent-1", own.ID); code != 404 {
		t.Fatalf("agent 1 on agent 2's task's own workspace: %d", code)
	}
	// The same name in another org is another workspace.
	if code, _, _ := ts.createOn(t, "w-admin-b", "agent-2", "prod"); code != 200 {
		t.Fatalf("another org's prod: %d", code)
	}

	// Tasks and plans of the workspace stay agent 1's.
	for _, suffix := range []string{"", "/status", "/plan", "/logs"} {
		if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/" + first.ID + suffix, key: "w-admin-2"}); w.Code != 404 {
			t.Fatalf("agent 2 reads agent 1's task%s: %d %s", suffix, w.Code, w.Body)
		}
	}

	// A grant lets agent 2 in.
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/workspaces/prod", key: "w-op", body: `{"agents":["agent-1","agent-2"]}`}); w.Code != 200 {
		t.Fatalf("grant: %d %s", w.Code, w.Body)
	}
	code, _, second := ts.createOn(t, "w-op-2", "agent-2", "prod")
	if code != 200 {
		t.Fatalf("agent 2 after the grant: %d", code)
	}
	if w, _ := ts.store.GetWorkspace(ctx, "org-a", "prod"); w.LatestTaskID != second.ID {
		t.Fatalf("latest task %s, want %s", w.LatestTaskID, second.ID)
	}
	// Still not agent 1's task for agent 2.
	if w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/" + first.ID, key: "w-op-2"}); w.Code != 404 {
		t.Fatalf("agent 2 reads agent 1's task after the grant: %d", w.Code)
	}
}

// TestWorkspaceFirstClaimRace: agents creating the first tasks of a
// workspace at once never both own it.
func TestWorkspaceFirstClaimRace(t *testing.T) {
	t.Parallel()
	ts := newWorkspaceServer(t)
	for round := range 4 {
		ws := fmt.Sprint("race-", round)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			codes = map[string][]int{}
		)
		for i := range 8 {
			key, agent := "w-op-1", "agent-1"
			if i%2 == 1 {
				key, agent = "w-op-2", "agent-2"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, _ := ts.createOn(t, key, agent, ws)
				mu.Lock()
				codes[agent] = append(codes[agent], code)
				mu.Unlock()
			}()
		}
		wg.Wait()
		w, err := ts.store.GetWorkspace(t.Context(), "org-a", ws)
		if err != nil || len(w.Agents) != 1 {
			t.Fatalf("%s: %+v, %v", ws, w, err)
		}
		for agent, cs := range codes {
			want := 404
			if agent == w.Agents[0] {
				want = 200
			}
			for _, c := range cs {
				if c != want {
					t.Fatalf("%s owned by %s: %s got %v", ws, w.Agents[0], agent, codes)
				}
			}
		}
	}
}

// TestWorkspaceStateAccess: on the state routes, a key bound to an agent
// reaches only the workspaces its agent may use (404 otherwise, and
// nothing changes); an admin key's write claims an unowned workspace for
// its agent; task credentials are not affected.
func TestWorkspaceStateAccess(t *testing.T) {
	t.Parallel()
	ts := newWorkspaceServer(t)
	ctx := t.Context()
	if _, err := ts.store.ClaimWorkspace(ctx, store.WorkspaceClaim{Org: "org-a", Name: "prod", Agent: "agent-1", By: "op-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	doc := `{"version":4,"serial":3,"lineage":"l","resources":[]}`
	base := "/api/v1/state/org-a/prod"
	if w := ts.do(t, req{method: "POST", path: base, key: "w-admin-1", body: doc}); w.Code != 200 {
		t.Fatalf("the owner's admin writes: %d %s", w.Code, w.Body)
	}
	for _, r := range []req{
		{method: "GET", path: base}, {method: "GET", path: base + "/lock"}, {method: "GET", path: base + "/versions"},
		{method: "GET", path: base + "/versions/1"}, {method: "POST", path: base, body: doc},
		{method: "POST", path: base + "/lock", body: `{"ID":"stolen"}`}, {method: "DELETE", path: base + "/lock?force=true"},
	} {
		for _, key := range []string{"w-admin-2", "w-op-2"} {
			r.key = key
			w := ts.do(t, r)
			if w.Code != 404 {
				t.Fatalf("%s %s %s: %d %s", key, r.method, r.path, w.Code, w.Body)
			}
			if e := decodeError(t, w); e.Error.Details["workspace"] != "prod" || strings.Contains(w.Body.String(), "lineage") {
				t.Fatalf("%s %s %s: %s", key, r.method, r.path, w.Body)
			}
		}
	}
	// The same as basic auth (how terraform sends a key).
	hr := ts.do(t, req{method: "GET", path: base, header: [][2]string{{"Authorization", basicAuth("x", "w-admin-2")}}})
	if hr.Code != 404 {
		t.Fatalf("basic-auth key of agent 2: %d %s", hr.Code, hr.Body)
	}
	if _, err := ts.store.GetStateLock(ctx, "org-a", "prod"); err == nil {
		t.Fatal("a refused key took the lock")
	}
	if v, err := ts.store.GetState(ctx, "org-a", "prod"); err != nil || v.Version != 1 {
		t.Fatalf("state after refused writes: %+v, %v", v, err)
	}
	// The owner's keys and unbound keys read it.
	for _, key := range []string{"w-admin-1", "w-admin"} {
		if w := ts.do(t, req{method: "GET", path: base, key: key}); w.Code != 200 || !strings.Contains(w.Body.String(), `"lineage"`) {
			t.Fatalf("%s reads: %d", key, w.Code)
		}
	}
	if w := ts.do(t, req{method: "GET", path: base + "/versions", key: "w-viewer"}); w.Code != 200 {
		t.Fatalf("unbound viewer lists versions: %d", w.Code)
	}
	// A task credential opens its own workspace whatever its agent.
	ts.addTask(t, store.Task{ID: "task-of-2", Org: "org-a", AgentID: "agent-2", Status: task.StatusRunning})
	if w := ts.stateReq(t, "GET", base, "task-of-2", "org-a", "prod", ""); w.Code != 200 {
		t.Fatalf("a task credential: %d %s", w.Code, w.Body)
	}

	// An admin key's write claims a new workspace for its agent; an
	// operator's refused write claims nothing.
	if w := ts.do(t, req{method: "POST", path: "/api/v1/state/org-a/fresh/lock", key: "w-admin-2", body: `{"ID":"L"}`}); w.Code != 200 {
		t.Fatalf("agent 2's admin locks a new workspace: %d %s", w.Code, w.Body)
	}
	if w, err := ts.store.GetWorkspace(ctx, "org-a", "fresh"); err != nil || !reflect.DeepEqual(w.Agents, []string{"agent-2"}) || w.Lock == nil {
		t.Fatalf("workspace claimed by a lock: %+v, %v", w, err)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/state/org-a/fresh/lock", key: "w-admin-1"}); w.Code != 404 {
		t.Fatalf("agent 1 reads agent 2's lock: %d", w.Code)
	}
	if w := ts.do(t, req{method: "POST", path: "/api/v1/state/org-a/other", key: "w-op-1", body: doc}); w.Code != 404 {
		t.Fatalf("an operator's write of a workspace nobody holds: %d %s", w.Code, w.Body)
	}
	if _, err := ts.store.GetWorkspace(ctx, "org-a", "other"); err == nil {
		t.Fatal("an operator's refused write claimed the workspace")
	}
	// An unbound admin's write records a new workspace, unowned.
	if w := ts.do(t, req{method: "POST", path: "/api/v1/state/org-a/keys-only", key: "w-admin", body: doc}); w.Code != 200 {
		t.Fatalf("an unbound admin writes: %d %s", w.Code, w.Body)
	}
	if w, err := ts.store.GetWorkspace(ctx, "org-a", "keys-only"); err != nil || len(w.Agents) != 0 || w.State == nil {
		t.Fatalf("a workspace written by an unbound key: %+v, %v", w, err)
	}
}

// basicAuth is an Authorization header of basic auth.
func basicAuth(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// TestWorkspaceRoutes: who sees and changes which workspace, and what the
// views say.
func TestWorkspaceRoutes(t *testing.T) {
	t.Parallel()
	ts := newWorkspaceServer(t)
	ctx := t.Context()
	_, _, first := ts.createOn(t, "w-op-1", "agent-1", "prod")
	ts.createOn(t, "w-op-2", "agent-2", "dev")
	if _, err := ts.store.PutState(ctx, store.StateVersion{Org: "org-a", Workspace: "prod", Serial: 42, Lineage: "l", MD5: "m", Data: []byte("x")}, ""); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.LockState(ctx, store.StateLock{Org: "org-a", Workspace: "prod", ID: "L1", TaskID: first.ID,
		Info: []byte(`{"ID":"L1","Who":"runner@host","Operation":"OperationTypeApply"}`)}); err != nil {
		t.Fatal(err)
	}

	list := func(key, query string) ([]api.Workspace, http.Header) {
		t.Helper()
		w := ts.do(t, req{method: "GET", path: "/api/v1/workspaces" + query, key: key})
		if w.Code != 200 {
			t.Fatalf("list %s%s: %d %s", key, query, w.Code, w.Body)
		}
		var out []api.Workspace
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out, w.Header()
	}
	names := func(ws []api.Workspace) string {
		var n []string
		for _, w := range ws {
			if !strings.HasPrefix(w.Name, "task-") {
				n = append(n, w.Name)
			}
		}
		return strings.Join(n, ",")
	}
	if got, _ := list("w-viewer", ""); names(got) != "dev,prod" {
		t.Fatalf("unbound viewer lists %s", names(got))
	}
	if got, _ := list("w-op-2", ""); names(got) != "dev" || got[0].Agents[0] != "agent-2" {
		t.Fatalf("agent 2 lists %+v", got)
	}
	if got, _ := list("w-admin-b", ""); len(got) != 0 {
		t.Fatalf("org-b lists %+v", got)
	}
	page, h := list("w-admin", "?limit=1&page=2")
	if len(page) != 1 || page[0].Name != "prod" || h.Get("X-Total-Count") != "2" || !strings.Contains(h.Get("Link"), `rel="prev"`) {
		t.Fatalf("page 2 of 1: %+v %v", page, h)
	}
	for _, q := range []string{"?sort=name", "?limit=0", "?page=x", "?limit=1&limit=2", "?%zz"} {
		if w := ts.do(t, req{method: "GET", path: "/api/v1/workspaces" + q, key: "w-admin"}); w.Code != 400 {
			t.Fatalf("list%s: %d", q, w.Code)
		} else {
			decodeError(t, w)
		}
	}

	// The view: agents, latest task, serial, lock.
	w := ts.do(t, req{method: "GET", path: "/api/v1/workspaces/prod", key: "w-op-1"})
	var v api.Workspace
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &v) != nil {
		t.Fatalf("get prod: %d %s", w.Code, w.Body)
	}
	if v.Name != "prod" || !reflect.DeepEqual(v.Agents, []string{"agent-1"}) || v.CreatedBy != "op-1" || v.LatestTask == nil ||
		v.LatestTask.ID != first.ID || v.LatestTask.Status != task.StatusPending || v.StateSerial == nil || *v.StateSerial != 42 ||
		v.Lock == nil || v.Lock.ID != "L1" || v.Lock.Who != "runner@host" || v.Lock.Operation != "OperationTypeApply" || v.Lock.TaskID != first.ID {
		t.Fatalf("view of prod: %s", w.Body)
	}
	var raw map[string]any
	_ = json.Unmarshal(ts.do(t, req{method: "GET", path: "/api/v1/workspaces/dev", key: "w-admin"}).Body.Bytes(), &raw)
	if raw["lock"] != nil || raw["state_serial"] != nil || len(raw) != 9 {
		t.Fatalf("view of dev (no state, no lock: nulls): %v", raw)
	}
	for _, c := range []struct {
		key, name string
		code      int
	}{
		{"w-op-2", "prod", 404}, {"w-admin-2", "prod", 404}, {"w-admin-b", "prod", 404}, {"w-admin", "nope", 404},
		{"w-viewer", "prod", 200}, {"w-admin", "..", 400}, {"w-admin", "a%20b", 400}, {"w-admin", strings.Repeat("x", 129), 400},
	} {
		w := ts.do(t, req{method: "GET", path: "/api/v1/workspaces/" + c.name, key: c.key})
		if w.Code != c.code {
			t.Fatalf("GET %s with %s: %d, want %d: %s", c.name, c.key, w.Code, c.code, w.Body)
		}
		if c.code != 200 {
			if e := decodeError(t, w); c.code == 404 && e.Error.Details["workspace"] != c.name {
				t.Fatalf("404 of %s: %s", c.name, w.Body)
			}
		}
	}

	// PUT: unbound operators and admins only; input checked.
	put := func(key, name, body string, header ...[2]string) (int, errBody) {
		t.Helper()
		w := ts.do(t, req{method: "PUT", path: "/api/v1/workspaces/" + name, key: key, body: body, header: header})
		if w.Code == 200 {
			return 200, errBody{}
		}
		return w.Code, decodeError(t, w)
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("agent-", i))
	}
	for _, c := range []struct {
		key, body string
		code      int
		field     string
	}{
		{"w-admin-1", `{"agents":["agent-1","agent-2"]}`, 403, ""},
		{"w-op-1", `{"agents":["agent-1"]}`, 403, ""},
		{"w-viewer", `{"agents":["agent-1"]}`, 403, ""},
		{"w-admin", `{"agents":["agent-1"],"owner":"x"}`, 400, "owner"},
		{"w-admin", `{}`, 400, "agents"},
		{"w-admin", `{"agents":null}`, 400, "agents"},
		{"w-admin", `{"agents":"agent-1"}`, 400, "agents"},
		{"w-admin", `{"agents":[1]}`, 400, "agents"},
		{"w-admin", `{"agents":["a b"]}`, 400, "agents"},
		{"w-admin", `{"agents":[""]}`, 400, "agents"},
		{"w-admin", `{"agents":["agent-1","agent-1"]}`, 400, "agents"},
		{"w-admin", `{"agents":[` + strings.Join(many, ",") + `]}`, 400, "agents"},
		{"w-admin", `[]`, 400, "body"},
		{"w-admin", `{"agents":[]} x`, 400, "body"},
	} {
		code, e := put(c.key, "prod", c.body)
		if code != c.code || (c.field != "" && e.Error.Details["field"] != c.field) {
			t.Fatalf("PUT %s by %s: %d %+v, want %d naming %q", c.body, c.key, code, e, c.code, c.field)
		}
	}
	if code, _ := put("w-admin", "prod", `{"agents":[]}`, [2]string{"Content-Type", "text/plain"}); code != 415 {
		t.Fatalf("PUT as text/plain: %d", code)
	}
	if code, _ := put("w-admin", "..", `{"agents":[]}`); code != 400 {
		t.Fatalf("PUT of ..: %d", code)
	}
	if w, _ := ts.store.GetWorkspace(ctx, "org-a", "prod"); !reflect.DeepEqual(w.Agents, []string{"agent-1"}) {
		t.Fatalf("a refused PUT changed the agents: %v", w.Agents)
	}
	// The owner may change; the answer is the view.
	w = ts.do(t, req{method: "PUT", path: "/api/v1/workspaces/prod", key: "w-op", body: `{"agents":["agent-2","agent-1"]}`})
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &v) != nil || !reflect.DeepEqual(v.Agents, []string{"agent-2", "agent-1"}) ||
		v.UpdatedBy != "op" || v.CreatedBy != "op-1" || v.StateSerial == nil {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if got, _ := list("w-op-2", ""); names(got) != "dev,prod" {
		t.Fatalf("agent 2 after the grant lists %s", names(got))
	}
	// A workspace nobody used yet is created, reserved for its agent.
	if code, _ := put("w-admin", "reserved", `{"agents":["agent-1"]}`); code != 200 {
		t.Fatalf("PUT of a new workspace: %d", code)
	}
	if code, _, _ := ts.createOn(t, "w-op-2", "agent-2", "reserved"); code != 404 {
		t.Fatalf("agent 2 on a workspace reserved for agent 1: %d", code)
	}

	// Revoking an agent that has a schedule on the workspace: 409.
	def, _ := json.Marshal(map[string]any{"name": "nightly", "kind": "task", "template": map[string]any{
		"name": "n", "agent_id": "agent-2", "runner_id": "r", "parameters": map[string]any{"workspace": "prod"}}})
	now := time.Now().UTC()
	if err := ts.store.CreateSchedule(ctx, store.Schedule{ID: "sched-prod", Org: "org-a", Name: "nightly", Kind: "task", AgentID: "agent-2",
		RunnerID: "r", Definition: def, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	code, e := put("w-admin", "prod", `{"agents":["agent-1"]}`)
	if code != 409 || fmt.Sprint(e.Error.Details["schedules"]) != "[sched-prod]" {
		t.Fatalf("revoking an agent with a schedule on the workspace: %d %+v", code, e)
	}
	if code, _ := put("w-admin", "prod", `{"agents":["agent-2"]}`); code != 200 {
		t.Fatalf("revoking the agent without one: %d", code)
	}
	if code, _, _ := ts.createOn(t, "w-op-1", "agent-1", "prod"); code != 404 {
		t.Fatalf("agent 1 after it was revoked: %d", code)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/state/org-a/prod/lock", key: "w-admin-1"}); w.Code != 404 {
		t.Fatalf("agent 1's admin reads the lock after it was revoked: %d", w.Code)
	}
}

// TestWorkspaceOfScheduleTemplate: a schedule's template claims its
// workspace as a create does: another agent's key gets a 404 before
// anything is scheduled.
func TestWorkspaceOfScheduleTemplate(t *testing.T) {
	t.Parallel()
	ts := newWorkspaceServer(t)
	ts.createOn(t, "w-op-1", "agent-1", "prod")
	w := ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "w-op-2", body: `{"name":"s","cron":"@daily","template":` +
		`{"name":"n","agent_id":"agent-2","runner_id":"r","parameters":{"workspace":"prod"}}}`})
	if w.Code != 404 {
		t.Fatalf("a schedule on another agent's workspace: %d %s", w.Code, w.Body)
	}
	if e := decodeError(t, w); e.Error.Details["field"] != "template.parameters.workspace" || e.Error.Details["workspace"] != "prod" {
		t.Fatalf("404: %s", w.Body)
	}
	if rows, total, err := ts.store.ListSchedules(t.Context(), store.ScheduleQuery{Org: "org-a", Limit: 10}); err != nil || total != 0 {
		t.Fatalf("a refused schedule was stored: %v %v", rows, err)
	}
}
