package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func TestParseApprovalParameters(t *testing.T) {
	body := func(params string) []byte {
		return []byte(`{"name":"n","agent_id":"a","runner_id":"r","parameters":` + params + `}`)
	}
	req, err := parseCreate(body(`{"approval":"destructive","approval_timeout":"90m"}`))
	if err != nil || req.Params.Approval != task.ApprovalDestructive || time.Duration(req.Params.ApprovalTimeout) != 90*time.Minute {
		t.Fatalf("%+v %v", req, err)
	}
	if req, err = parseCreate(body(`{"approval":"none"}`)); err != nil || req.Params.EffectiveApproval() != task.ApprovalNone {
		t.Fatalf("%+v %v", req, err)
	}
	for _, c := range []struct{ params, field, msg string }{
		{`{"approval":"sometimes"}`, "parameters.approval", "none, required or destructive"},
		{`{"approval":""}`, "parameters.approval", "none, required or destructive"},
		{`{"approval":true}`, "parameters.approval", "none, required or destructive"},
		{`{"approval":"required","approval_timeout":"0s"}`, "parameters.approval_timeout", "1s to 720h"},
		{`{"approval":"required","approval_timeout":"721h"}`, "parameters.approval_timeout", "1s to 720h"},
		{`{"approval":"required","approval_timeout":3600}`, "parameters.approval_timeout", "duration string"},
		{`{"approval_timeout":"1h"}`, "parameters.approval_timeout", "only with approval required or destructive"},
		{`{"approval":"required","action":"plan"}`, "parameters.approval", "plan-only"},
	} {
		_, err := parseCreate(body(c.params))
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
			t.Errorf("%s: %v, want field %s with %q", c.params, err, c.field, c.msg)
		}
	}
}

func TestParseDecision(t *testing.T) {
	for _, c := range []struct {
		body, comment, field string
	}{
		{"", "", ""},
		{"  \n", "", ""},
		{`{}`, "", ""},
		{`{"comment":null}`, "", ""},
		{`{"comment":"ship it \u00e9"}`, "ship it \u00e9", ""},
		{`{"comment":1}`, "", "comment"},
		{`{"comment":"a","extra":1}`, "", "extra"},
		{`{"Comment":"a"}`, "", "Comment"},
		{`[]`, "", "body"},
		{`{`, "", "body"},
		{`{"comment":"a"} {}`, "", "body"},
		{`{"comment":"` + strings.Repeat("x", maxCommentLen+1) + `"}`, "", "comment"},
		{`{"comment":"nul \u0000"}`, "", "comment"},
	} {
		got, err := parseDecision([]byte(c.body))
		var fe *fieldError
		switch {
		case c.field == "" && (err != nil || got != c.comment):
			t.Errorf("%q: %q, %v; want %q", c.body, got, err, c.comment)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
			t.Errorf("%q: %v, want an error naming %s", c.body, err, c.field)
		}
	}
}

func TestParsePlanFormat(t *testing.T) {
	for _, c := range []struct {
		query, accept string
		want          planFormat
		bad           string
	}{
		{"", "", planJSON, ""},
		{"", "text/plain", planText, ""},
		{"", "application/json", planJSON, ""},
		{"", "*/*", planJSON, ""},
		{"", "text/html, text/plain;q=0.5", planText, ""},
		{"", "application/json;q=0.4, text/plain;q=0.9", planText, ""},
		{"", "text/plain;q=0.5, application/json", planJSON, ""},
		{"", "application/json, text/plain", planJSON, ""},
		{"", "text/plain;q=0", planJSON, ""},
		{"", "text/plain;q=x", planJSON, ""},
		{"format=text", "application/json", planText, ""},
		{"format=json", "text/plain", planJSON, ""},
		{"format=xml", "", "", "format"},
		{"format=json&format=text", "", "", "format"},
		{"verbose=1", "", "", "verbose"},
	} {
		q, _ := url.ParseQuery(c.query)
		got, err := parsePlanFormat(q, c.accept)
		var fe *fieldError
		switch {
		case c.bad == "" && (err != nil || got != c.want):
			t.Errorf("%q %q: %q %v, want %q", c.query, c.accept, got, err, c.want)
		case c.bad != "" && (!errors.As(err, &fe) || fe.Field != c.bad):
			t.Errorf("%q %q: %v, want an error naming %s", c.query, c.accept, err, c.bad)
		}
	}
}

// The plan route serves what the store keeps, in both forms.
func TestPlanRoute(t *testing.T) {
	ts := newTestServer(t, false)
	ts.addTask(t, store.Task{ID: "task-plan1", Org: "org-a", AgentID: "agent-1"})
	ts.addTask(t, store.Task{ID: "task-noplan", Org: "org-a", AgentID: "agent-1"})
	doc := `{"task_id":"task-plan1","summary":{"add":1,"change":0,"destroy":0,"replace":0,"outputs":0}}`
	if err := ts.store.PutPlan(context.Background(), store.Plan{TaskID: "task-plan1", Org: "org-a", JSON: []byte(doc),
		Text: "  # terraform_data.x will be created\n", Summary: task.PlanSummary{Add: 1}}); err != nil {
		t.Fatal(err)
	}
	w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-plan1/plan", key: "k-viewer-a"})
	if w.Code != 200 || w.Body.String() != doc || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("json: %d %s %v", w.Code, w.Body, w.Header())
	}
	for _, r := range []req{
		{method: "GET", path: "/api/v1/tasks/task-plan1/plan", key: "k-agent-a", header: [][2]string{{"Accept", "text/plain"}}},
		{method: "GET", path: "/api/v1/tasks/task-plan1/plan?format=text", key: "k-admin-a"},
	} {
		w = ts.do(t, r)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "will be created") || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("text: %d %s %v", w.Code, w.Body, w.Header())
		}
	}
	w = ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-noplan/plan", key: "k-admin-a"})
	if e := decodeError(t, w); w.Code != 404 || !strings.Contains(e.Error.Message, "has not finished planning") || e.Error.Details["taskId"] != "task-noplan" {
		t.Fatalf("no plan: %d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-plan1/plan", key: "k-admin-b"})
	if e := decodeError(t, w); w.Code != 404 || e.Error.Message != "Task not found" {
		t.Fatalf("other org: %d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-plan1/plan?format=yaml", key: "k-admin-a"})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details[detailParameter] != "format" {
		t.Fatalf("bad format: %d %s", w.Code, w.Body)
	}
}

// decisionTemporal answers state queries and decision updates like a
// waiting workflow whose validator admits one decision.
type decisionTemporal struct {
	*fakeTemporal
	mu       sync.Mutex
	decided  *task.Decision
	updates  int
	updateFn func(task.Decision) (task.State, error)
}

func (f *decisionTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates++
	if o.UpdateName != task.UpdateDecision || o.WaitForStage != client.WorkflowUpdateStageCompleted || len(o.Args) != 1 {
		panic("unexpected update")
	}
	d := o.Args[0].(task.Decision)
	if f.decided != nil {
		return nil, temporal.NewApplicationError("already decided", "already_decided", "running")
	}
	f.decided = &d
	st, err := f.updateFn(d)
	return fakeUpdate{st: st, err: err}, err
}

type fakeUpdate struct {
	client.WorkflowUpdateHandle
	st  task.State
	err error
}

func (u fakeUpdate) Get(_ context.Context, ptr any) error {
	if u.err != nil {
		return u.err
	}
	b, _ := json.Marshal(u.st)
	return json.Unmarshal(b, ptr)
}

func TestDecisionRoutesAuthorization(t *testing.T) {
	dt := &decisionTemporal{fakeTemporal: newFakeTemporal()}
	ts := newTestServer(t, false, func(o *Options) { o.Temporal = dt })
	ts.addTask(t, store.Task{ID: "task-wait", Org: "org-a", AgentID: "agent-1", Status: task.StatusWaitingApproval})
	expires := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	waiting := task.State{ID: "task-wait", Status: task.StatusWaitingApproval, CreatedBy: "operator-a", UpdatedAt: time.Now(),
		Plan: &task.PlanSummary{Add: 1, Destroy: 1, Replace: 1}, Approval: &task.ApprovalState{ExpiresAt: &expires}, WaitingFor: "approval"}
	dt.state = &waiting
	dt.updateFn = func(d task.Decision) (task.State, error) {
		st := waiting
		st.Status = task.StatusRunning
		st.Approval = &task.ApprovalState{ExpiresAt: &expires, ApprovedBy: d.By, ApprovedAt: &d.At, Comment: d.Comment}
		return st, nil
	}
	approve := func(key, body string, header ...[2]string) (int, errBody, api.Task) {
		w := ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-wait/approve", key: key, body: body, header: header})
		var e errBody
		var tk api.Task
		if w.Code != 200 {
			e = decodeError(t, w)
		} else if err := json.Unmarshal(w.Body.Bytes(), &tk); err != nil {
			t.Fatal(err)
		}
		return w.Code, e, tk
	}
	// The status route names the wait.
	w := ts.do(t, req{method: "GET", path: "/api/v1/tasks/task-wait/status", key: "k-viewer-a"})
	var st api.Status
	_ = json.Unmarshal(w.Body.Bytes(), &st)
	if st.Status != task.StatusWaitingApproval || st.Metadata["waiting_for"] != "approval" || st.Metadata["approval_expires_at"] != "2026-01-02T00:00:00Z" ||
		st.Metadata["plan"].(map[string]any)["replace"] != 1.0 {
		t.Fatalf("status %s", w.Body)
	}

	for _, c := range []struct {
		key, body string
		header    [2]string
		code      int
		want      string
	}{
		{"k-admin-b", "", [2]string{}, 404, "Task not found"},
		{"k-viewer-a", "", [2]string{}, 403, "may not do this"},
		{"k-agent-a", "", [2]string{}, 403, "bound to agent agent-1"},
		{"k-operator-a", "", [2]string{}, 403, "four eyes"},
		{"k-admin-a", `{"comment":`, [2]string{}, 400, "JSON object"},
		{"k-admin-a", `{"why":"x"}`, [2]string{}, 400, `unknown field "why"`},
		{"k-admin-a", `{"comment":"x"}`, [2]string{"Content-Type", "text/plain"}, 415, "application/json"},
	} {
		var hdr [][2]string
		if c.header[0] != "" {
			hdr = append(hdr, c.header)
		}
		code, e, _ := approve(c.key, c.body, hdr...)
		if code != c.code || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s %q: %d %+v, want %d %q", c.key, c.body, code, e, c.code, c.want)
		}
	}
	if dt.updates != 0 {
		t.Fatalf("%d updates sent for refused requests", dt.updates)
	}
	// The admin may approve a task it did not create; so may it its own.
	code, _, tk := approve("k-admin-a", `{"comment":"ship it"}`)
	if code != 200 || tk.Status != task.StatusRunning || tk.ApprovedBy != "admin-a" || tk.ApprovalComment != "ship it" || tk.ApprovedAt == nil {
		t.Fatalf("approve: %d %+v", code, tk)
	}
	// A second decision loses: 409 with the current status.
	waiting.Status = task.StatusRunning
	code, e, _ := approve("k-admin-a", "")
	if code != 409 || e.Error.Details["status"] != "running" {
		t.Fatalf("second approve: %d %+v", code, e)
	}
	// The update's own refusal (a race the pre-check did not see) is a 409 too.
	waiting.Status = task.StatusWaitingApproval
	w = ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-wait/reject", key: "k-operator-a"})
	if e := decodeError(t, w); w.Code != 409 || e.Error.Details["status"] != "waiting_approval" {
		t.Fatalf("reject after the decision: %d %s", w.Code, w.Body)
	}
	if dt.updates != 2 {
		t.Fatalf("%d updates", dt.updates)
	}
}

func TestDecisionOnTaskNotWaiting(t *testing.T) {
	ts := newTestServer(t, true)
	ts.addTask(t, store.Task{ID: "task-done", Org: "org-a", AgentID: "agent-1", Status: task.StatusCompleted})
	w := ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-done/reject", key: "k-operator-a"})
	if e := decodeError(t, w); w.Code != http.StatusConflict || e.Error.Details["status"] != "completed" || e.Error.Details["taskId"] != "task-done" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-done/approve?now=1", key: "k-operator-a"})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details[detailParameter] != "now" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

// Four eyes holds for a task started outside the API (a child of another
// Temporal application, no creator on record): no operator may approve
// it, an admin may; and the decision the API sends carries the proof the
// workflow checks (only the API decides).
func TestDecisionOfTaskStartedOutsideTheAPI(t *testing.T) {
	dt := &decisionTemporal{fakeTemporal: newFakeTemporal()}
	var opts Options
	ts := newTestServer(t, false, func(o *Options) { o.Temporal = dt; opts = *o })
	ts.addTask(t, store.Task{ID: "task-child", Org: "org-a", AgentID: "agent-1", Status: task.StatusWaitingApproval})
	waiting := task.State{ID: "task-child", Status: task.StatusWaitingApproval, UpdatedAt: time.Now(), WaitingFor: "approval"}
	dt.state = &waiting
	dt.updateFn = func(d task.Decision) (task.State, error) {
		st := waiting
		st.Status = task.StatusRunning
		return st, nil
	}
	w := ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-child/approve", key: "k-operator-a"})
	if e := decodeError(t, w); w.Code != 403 || !strings.Contains(e.Error.Message, "started outside the API") {
		t.Fatalf("operator approving a task of unknown creator: %d %s", w.Code, w.Body)
	}
	if dt.updates != 0 {
		t.Fatal("an update was sent for a refused approval")
	}
	w = ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-child/approve", key: "k-admin-a"})
	if w.Code != 200 {
		t.Fatalf("admin approving: %d %s", w.Code, w.Body)
	}
	if dt.decided == nil || !opts.Secrets.CheckDecision("task-child", *dt.decided) {
		t.Fatalf("the API's decision carries no valid proof: %+v", dt.decided)
	}
}

// Four eyes holds for every key that wrote a scheduled task's template,
// not only the one that wrote it last (its CreatedBy).
func TestDecisionOfScheduledTaskRefusesEveryAuthor(t *testing.T) {
	dt := &decisionTemporal{fakeTemporal: newFakeTemporal()}
	ts := newTestServer(t, false, func(o *Options) { o.Temporal = dt })
	ts.addTask(t, store.Task{ID: "task-sched", Org: "org-a", AgentID: "agent-1", Status: task.StatusWaitingApproval, ScheduleID: "sched-x"})
	waiting := task.State{ID: "task-sched", Status: task.StatusWaitingApproval, UpdatedAt: time.Now(), WaitingFor: "approval",
		CreatedBy: "admin-a", Authors: []string{"operator-a", "admin-a"}}
	dt.state = &waiting
	dt.updateFn = func(d task.Decision) (task.State, error) {
		st := waiting
		st.Status = task.StatusRunning
		return st, nil
	}
	w := ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-sched/approve", key: "k-operator-a"})
	e := decodeError(t, w)
	if w.Code != 403 || !strings.Contains(e.Error.Message, "four eyes") || !strings.Contains(e.Error.Message, "wrote the template") {
		t.Fatalf("an earlier author of the template approving: %d %s", w.Code, w.Body)
	}
	if dt.updates != 0 {
		t.Fatal("an update was sent for a refused approval")
	}
	// An author may still reject it.
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/tasks/task-sched/reject", key: "k-operator-a"}); w.Code != 200 {
		t.Fatalf("an author rejecting: %d %s", w.Code, w.Body)
	}
}
