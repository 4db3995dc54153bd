package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/internal/temporalutil"
	"github.com/terratask/terratask/task"
)

// scheduleServer is a test server on a real Temporal server (temporaltest)
// with terratask's search attributes registered.
func scheduleServer(t *testing.T, mod ...func(*Options)) (*testServer, client.Client) {
	t.Helper()
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := temporalutil.EnsureSearchAttributes(ctx, c, srv.GetDefaultNamespace(), task.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, false, append([]func(*Options){func(o *Options) { o.Temporal = c }}, mod...)...), c
}

func decodeSchedule(t *testing.T, body []byte) api.Schedule {
	t.Helper()
	var s api.Schedule
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return s
}

// scheduledInput decodes the task input a Temporal Schedule's action starts.
func scheduledInput(t *testing.T, c client.Client, id string) (client.ScheduleWorkflowAction, task.Input) {
	t.Helper()
	d, err := c.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || len(a.Args) != 1 {
		t.Fatalf("action %+v", d.Schedule.Action)
	}
	p, ok := a.Args[0].(*commonpb.Payload)
	if !ok {
		t.Fatalf("arg %T", a.Args[0])
	}
	if strings.Contains(string(p.GetData()), "s3cret") {
		t.Fatalf("a secret in the schedule's action: %s", p.GetData())
	}
	var in task.Input
	if err := converter.GetDefaultDataConverter().FromPayload(p, &in); err != nil {
		t.Fatal(err)
	}
	return *a, in
}

func TestSchedulesOnTemporal(t *testing.T) {
	ts, c := scheduleServer(t)
	body := `{"name":"nightly","cron":"0 2 * * *","time_zone":"Europe/Berlin","template":` + testTemplate + `}`

	if w := ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-viewer-a", body: body}); w.Code != 403 {
		t.Fatalf("viewer create: %d %s", w.Code, w.Body)
	}
	w := ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-operator-a", body: strings.Replace(body, "0 2 * * *", "0 25 * * *", 1)})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "cron" {
		t.Fatalf("bad cron: %d %s", w.Code, w.Body)
	}
	// Agent 2's template names a workspace of its own: prod is agent 1's
	// (its first schedule claimed it).
	other := strings.Replace(strings.Replace(body, `"agent_id":"agent-1"`, `"agent_id":"agent-2"`, 1), `"workspace":"prod"`, `"workspace":"prod-2"`, 1)
	w = ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-agent-a", body: other})
	if e := decodeError(t, w); w.Code != 403 || e.Error.Details["field"] != "template.agent_id" {
		t.Fatalf("agent-bound key, other agent: %d %s", w.Code, w.Body)
	}

	w = ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-operator-a", body: body})
	if w.Code != 200 || strings.Contains(w.Body.String(), "s3cret") || strings.Contains(w.Body.String(), "k3y") {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	s := decodeSchedule(t, w.Body.Bytes())
	if !strings.HasPrefix(s.ID, "sched-") || s.Cron == nil || *s.Cron != "0 2 * * *" || s.Interval != nil || s.TimeZone != "Europe/Berlin" ||
		s.Kind != "task" || s.Overlap != "skip" || s.Paused || s.CreatedBy != "operator-a" || len(s.NextRuns) == 0 {
		t.Fatalf("created %s", w.Body)
	}
	next, _ := time.Parse(time.RFC3339, s.NextRuns[0])
	if berlin, _ := time.LoadLocation("Europe/Berlin"); next.In(berlin).Hour() != 2 {
		t.Fatalf("next run %s is not 02:00 in Berlin", s.NextRuns[0])
	}

	// The Temporal Schedule starts the task workflow on the control-plane
	// queue, with the task's search attributes and sealed secrets.
	action, in := scheduledInput(t, c, s.ID)
	if action.Workflow != task.WorkflowType || action.TaskQueue != task.ControlPlaneTaskQueue || action.ID != "task-"+strings.TrimPrefix(s.ID, "sched-") {
		t.Fatalf("action %+v", action)
	}
	if in.ID != "" || in.ScheduleID != s.ID || in.Metadata["schedule_id"] != s.ID || in.Org != "org-a" || in.AgentID != "agent-1" ||
		in.CreatedBy != "operator-a" || in.Params.Workspace != "prod" || in.SealedSecrets == "" {
		t.Fatalf("input %+v", in)
	}
	// Sealed under org-a's key: org-a's runners open them, the secret key
	// itself does not.
	orgBox, err := ts.opts.Secrets.Org("org-a")
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := orgBox.Open(in.SealedSecrets)
	if err != nil || secrets.SensitiveVariables["token"] != "s3cret" || secrets.Env["API_KEY"] != "k3y" {
		t.Fatalf("sealed secrets %+v %v", secrets, err)
	}
	if _, err := ts.opts.Secrets.Open(in.SealedSecrets); err == nil {
		t.Fatal("the secrets are sealed under the secret key, not org-a's")
	}
	if org, _ := action.TypedSearchAttributes.GetKeyword(temporal.NewSearchAttributeKeyKeyword(task.SearchAttrOrg)); org != "org-a" {
		t.Fatalf("action search attributes %+v", action.TypedSearchAttributes)
	}

	// Another org cannot see it; an agent-bound key of its agent can.
	if w := ts.do(t, req{method: "GET", path: "/api/v1/schedules/" + s.ID, key: "k-admin-b"}); w.Code != 404 {
		t.Fatalf("other org: %d", w.Code)
	}
	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/schedules/" + s.ID, key: "k-admin-b"}); w.Code != 404 {
		t.Fatalf("other org delete: %d", w.Code)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/schedules/" + s.ID, key: "k-agent-a"}); w.Code != 200 {
		t.Fatalf("agent-bound key of the template's agent: %d", w.Code)
	}
	w = ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-admin-a", body: strings.Replace(other, `"cron":"0 2 * * *"`, `"interval":"1h"`, 1)})
	if w.Code != 200 {
		t.Fatalf("second create: %d %s", w.Code, w.Body)
	}
	s2 := decodeSchedule(t, w.Body.Bytes())
	if s2.Interval == nil || *s2.Interval != "1h0m0s" || s2.Cron != nil {
		t.Fatalf("interval schedule %s", w.Body)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/schedules/" + s2.ID, key: "k-agent-a"}); w.Code != 404 {
		t.Fatalf("agent-bound key, other agent's schedule: %d", w.Code)
	}
	for key, n := range map[string]int{"k-viewer-a": 2, "k-agent-a": 1, "k-admin-b": 0} {
		w := ts.do(t, req{method: "GET", path: "/api/v1/schedules", key: key})
		var list []api.Schedule
		if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 || len(list) != n || w.Header().Get("X-Total-Count") != strconv.Itoa(n) {
			t.Fatalf("%s list: %d %s", key, w.Code, w.Body)
		}
	}

	// Pause, change the spec and the template; Temporal follows.
	w = ts.do(t, req{method: "PATCH", path: "/api/v1/schedules/" + s.ID, key: "k-operator-a", body: `{"paused":true,"cron":"30 3 * * 1-5","overlap":"buffer_one"}`})
	if w.Code != 200 {
		t.Fatalf("patch: %d %s", w.Code, w.Body)
	}
	if p := decodeSchedule(t, w.Body.Bytes()); !p.Paused || *p.Cron != "30 3 * * 1-5" || p.Overlap != "buffer_one" || p.Note == "" {
		t.Fatalf("patched %s", w.Body)
	}
	d, err := c.ScheduleClient().GetHandle(context.Background(), s.ID).Describe(context.Background())
	if err != nil || !d.Schedule.State.Paused || d.Schedule.Policy.Overlap.String() != "BufferOne" {
		t.Fatalf("Temporal after patch: %+v %v", d.Schedule.State, err)
	}
	if _, in2 := scheduledInput(t, c, s.ID); in2.SealedSecrets != in.SealedSecrets {
		t.Fatal("a patch without template changed the action")
	}
	w = ts.do(t, req{method: "PATCH", path: "/api/v1/schedules/" + s.ID, key: "k-operator-a",
		body: `{"template":` + strings.Replace(testTemplate, `"token":"s3cret"`, `"token":"s3cret-2"`, 1) + `}`})
	if w.Code != 200 {
		t.Fatalf("patch template: %d %s", w.Code, w.Body)
	}
	_, in3 := scheduledInput(t, c, s.ID)
	if sec, _ := orgBox.Open(in3.SealedSecrets); sec.SensitiveVariables["token"] != "s3cret-2" {
		t.Fatalf("new template's secrets: %+v", sec)
	}
	if w := ts.do(t, req{method: "PATCH", path: "/api/v1/schedules/" + s.ID, key: "k-viewer-a", body: `{"paused":false}`}); w.Code != 403 {
		t.Fatalf("viewer patch: %d", w.Code)
	}

	// Delete removes the Temporal Schedule too.
	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/schedules/" + s.ID, key: "k-operator-a"}); w.Code != 200 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if _, err := c.ScheduleClient().GetHandle(context.Background(), s.ID).Describe(context.Background()); err == nil {
		t.Fatal("the Temporal Schedule survived its delete")
	}
	for _, r := range []req{
		{method: "GET", path: "/api/v1/schedules/" + s.ID, key: "k-admin-a"},
		{method: "POST", path: "/api/v1/schedules/" + s.ID + "/trigger", key: "k-admin-a"},
	} {
		if w := ts.do(t, r); w.Code != http.StatusNotFound {
			t.Fatalf("%s after delete: %d", r.method, w.Code)
		}
	}
}

// TestScheduleTemplateNotify: a template's notify URL is held to
// --notify-allow as a create's is, in a create and in a patch; its source
// to --source-allow.
func TestScheduleTemplateNotify(t *testing.T) {
	allow, err := events.ParseAllowList([]string{"hooks.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := scheduleServer(t, func(o *Options) { o.NotifyAllow = allow })
	template := func(host string) string {
		return `{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"notify":{"url":"https://` + host + `/cb"}}}`
	}
	w := ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-operator-a",
		body: `{"name":"s","interval":"1h","template":` + template("evil.example.com") + `}`})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "template.parameters.notify.url" || !strings.Contains(e.Error.Message, "--notify-allow") {
		t.Fatalf("create, host not allowed: %d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-operator-a",
		body: `{"name":"s","interval":"1h","template":` + template("hooks.example.com") + `}`})
	if w.Code != 200 {
		t.Fatalf("create, host allowed: %d %s", w.Code, w.Body)
	}
	id := decodeSchedule(t, w.Body.Bytes()).ID
	w = ts.do(t, req{method: "PATCH", path: "/api/v1/schedules/" + id, key: "k-operator-a",
		body: `{"template":` + template("evil.example.com") + `}`})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "template.parameters.notify.url" {
		t.Fatalf("patch, host not allowed: %d %s", w.Code, w.Body)
	}
	// A template's remote module source is held to --source-allow (none
	// here) as a create's is.
	w = ts.do(t, req{method: "PATCH", path: "/api/v1/schedules/" + id, key: "k-operator-a",
		body: `{"template":{"name":"n","agent_id":"agent-1","runner_id":"local","parameters":{"source":"git::http://127.0.0.1/x"}}}`})
	if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "template.parameters.source" || !strings.Contains(e.Error.Message, "--source-allow") {
		t.Fatalf("patch, remote source: %d %s", w.Code, w.Body)
	}
}

// TestScheduleTemplateAuthors: a schedule's tasks carry every key that
// wrote its template (the creator, then each key whose patch changed the
// template, once each) as their authors, and the last of them as their
// creator; a patch that leaves the template alone adds nobody.
func TestScheduleTemplateAuthors(t *testing.T) {
	ts, c := scheduleServer(t)
	w := ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-operator-a",
		body: `{"name":"authors","interval":"1h","paused":true,"template":` + testTemplate + `}`})
	if w.Code != 200 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	id := decodeSchedule(t, w.Body.Bytes()).ID
	check := func(step, createdBy string, authors ...string) {
		t.Helper()
		_, in := scheduledInput(t, c, id)
		if in.CreatedBy != createdBy || strings.Join(in.Authors, ",") != strings.Join(authors, ",") {
			t.Fatalf("%s: created by %q, authors %q; want %q, %q", step, in.CreatedBy, in.Authors, createdBy, authors)
		}
	}
	check("created", "operator-a", "operator-a")
	patch := func(key, body string) {
		t.Helper()
		if w := ts.do(t, req{method: "PATCH", path: "/api/v1/schedules/" + id, key: key, body: body}); w.Code != 200 {
			t.Fatalf("patch by %s: %d %s", key, w.Code, w.Body)
		}
	}
	newTemplate := `{"template":` + strings.Replace(testTemplate, `"workspace":"prod"`, `"workspace":"prod-2"`, 1) + `}`
	patch("k-agent-a", newTemplate)
	check("template changed by a second key", "agent-a", "operator-a", "agent-a")
	patch("k-admin-a", `{"paused":false,"jitter":"1s"}`)
	check("a patch without a template", "agent-a", "operator-a", "agent-a")
	patch("k-operator-a", `{"template":`+testTemplate+`}`)
	check("template changed again by its creator", "operator-a", "operator-a", "agent-a")
	patch("k-admin-a", newTemplate)
	check("template changed by a third key", "admin-a", "operator-a", "agent-a", "admin-a")
}
