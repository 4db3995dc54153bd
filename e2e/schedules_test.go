package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
)

// Schedule is the API's schedule object as a client sees it.
type Schedule struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Kind       string         `json:"kind"`
	Cron       *string        `json:"cron"`
	Interval   *string        `json:"interval"`
	Paused     bool           `json:"paused"`
	Overlap    string         `json:"overlap"`
	Template   map[string]any `json:"template"`
	NextRuns   []string       `json:"next_runs"`
	RecentRuns []struct {
		TaskID string `json:"task_id"`
		Status string `json:"status"`
	} `json:"recent_runs"`
	Drifted     *bool  `json:"drifted"`
	DriftTaskID string `json:"drift_task_id"`
}

func (p *devProc) createSchedule(t testing.TB, body map[string]any) Schedule {
	t.Helper()
	var s Schedule
	if code, _ := p.request(t, http.MethodPost, "/api/v1/schedules", body, &s); code != http.StatusOK || s.ID == "" {
		t.Fatalf("create schedule: %d %+v", code, s)
	}
	t.Cleanup(func() { p.request(t, http.MethodDelete, "/api/v1/schedules/"+s.ID, nil, nil) })
	return s
}

// scheduledTasks lists a schedule's tasks (GET /tasks?schedule=ID), oldest
// first.
func (p *devProc) scheduledTasks(t testing.TB, id string) []Task {
	t.Helper()
	var list []Task
	code, h := p.request(t, http.MethodGet, "/api/v1/tasks?schedule="+id+"&order=asc&limit=1000", nil, &list)
	if code != http.StatusOK || h.Get("X-Total-Count") != strconv.Itoa(len(list)) {
		t.Fatalf("tasks of schedule %s: %d %v", id, code, h)
	}
	return list
}

// waitScheduled polls until the schedule has at least n tasks, all ended.
func (p *devProc) waitScheduled(t testing.TB, id string, n int, timeout time.Duration) []Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list := p.scheduledTasks(t, id)
		done := len(list) >= n
		for _, tk := range list {
			done = done && (tk.Status == "completed" || tk.Status == "failed" || tk.Status == "cancelled")
		}
		if done {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s: want %d ended tasks, have %+v", id, n, list)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestScheduleRunsPausesTriggersAndDeletes(t *testing.T) {
	t.Parallel()
	c := dialShared(t)
	s := shared.createSchedule(t, map[string]any{
		"name": "every few seconds", "interval": "4s",
		"template": map[string]any{
			"name": "scheduled", "agent_id": "agent-sched", "runner_id": "local",
			"metadata":   map[string]any{"team": "infra"},
			"parameters": map[string]any{"files": fixture(t, "five"), "sensitive_variables": map[string]any{"api_token": "sched-s3cret"}},
		},
	})
	if s.Interval == nil || *s.Interval != "4s" || s.Kind != "task" || s.Overlap != "skip" {
		t.Fatalf("created %+v", s)
	}
	// Two runs start on their own and complete.
	runs := shared.waitScheduled(t, s.ID, 2, 3*time.Minute)
	prefix := "task-" + strings.TrimPrefix(s.ID, "sched-") + "-"
	for _, tk := range runs[:2] {
		if tk.Status != "completed" || !strings.HasPrefix(tk.ID, prefix) || tk.Metadata["schedule_id"] != s.ID ||
			tk.Metadata["team"] != "infra" || tk.AgentID != "agent-sched" {
			t.Fatalf("scheduled task %+v", tk)
		}
		// The ID ends in the run's time, as Temporal names it.
		if _, err := time.Parse(time.RFC3339, strings.TrimPrefix(tk.ID, prefix)); err != nil {
			t.Fatalf("task ID %s: %v", tk.ID, err)
		}
		got := shared.get(t, tk.ID)
		if names, _ := got.Result.Output["names"].([]any); len(names) != 5 || got.Result.Output["token"] == "sched-s3cret" {
			t.Fatalf("outputs of %s: %v", tk.ID, got.Result.Output)
		}
	}
	// The runs carry the task's search attributes, and Temporal's own
	// link to the schedule.
	resp, err := c.ListWorkflow(waitCtx(t, time.Minute), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("TerrataskAgent = 'agent-sched' AND TemporalScheduledById = '%s'", s.ID)})
	if err != nil || len(resp.Executions) < 2 {
		t.Fatalf("visibility of the runs: %v %v", resp, err)
	}

	// Paused, it starts nothing.
	var p Schedule
	if code, _ := shared.request(t, http.MethodPatch, "/api/v1/schedules/"+s.ID, map[string]any{"paused": true}, &p); code != 200 || !p.Paused {
		t.Fatalf("pause: %d %+v", code, p)
	}
	settled := shared.waitScheduled(t, s.ID, 0, 2*time.Minute)
	time.Sleep(12 * time.Second) // three intervals
	if after := shared.scheduledTasks(t, s.ID); len(after) != len(settled) {
		t.Fatalf("a paused schedule started %d task(s)", len(after)-len(settled))
	}
	// Trigger runs it now, paused or not.
	if code, _ := shared.request(t, http.MethodPost, "/api/v1/schedules/"+s.ID+"/trigger", nil, &p); code != 200 {
		t.Fatalf("trigger: %d", code)
	}
	triggered := shared.waitScheduled(t, s.ID, len(settled)+1, 2*time.Minute)
	if last := triggered[len(triggered)-1]; last.Status != "completed" {
		t.Fatalf("triggered run %+v", last)
	}
	var detail Schedule
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/schedules/"+s.ID, nil, &detail); code != 200 || len(detail.RecentRuns) < 3 {
		t.Fatalf("detail: %d %+v", code, detail)
	}
	if r := detail.RecentRuns[0]; r.TaskID != triggered[len(triggered)-1].ID || r.Status != "completed" {
		t.Fatalf("latest recent run %+v, want %s", r, triggered[len(triggered)-1].ID)
	}

	// The Web UI shows it on its Schedules page (the list, eventually
	// consistent, and the schedule's own page).
	uiGet := func(path string) string {
		resp, err := http.Get(shared.ui + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Web UI %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if page := uiGet("/api/v1/namespaces/default/schedules/" + s.ID); !strings.Contains(page, "terratask.Task") || !strings.Contains(page, "terratask-control") {
		t.Fatalf("the schedule's page: %s", page)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(uiGet("/api/v1/namespaces/default/schedules"), s.ID); {
		if time.Now().After(deadline) {
			t.Fatalf("the Web UI's Schedules page does not list %s", s.ID)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Delete removes the Temporal Schedule; its tasks stay.
	if code, _ := shared.request(t, http.MethodDelete, "/api/v1/schedules/"+s.ID, nil, nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	_, err = c.ScheduleClient().GetHandle(context.Background(), s.ID).Describe(context.Background())
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		t.Fatalf("the Temporal Schedule after delete: %v", err)
	}
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/schedules/"+s.ID, nil, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
	if len(shared.scheduledTasks(t, s.ID)) != len(triggered) {
		t.Fatal("the schedule's tasks went with it")
	}
}

func TestScheduleOverlapSkip(t *testing.T) {
	t.Parallel()
	c := dialShared(t)
	s := shared.createSchedule(t, map[string]any{
		"name": "slow", "interval": "2s",
		"template": map[string]any{
			"name": "slow scheduled", "agent_id": "agent-sched", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "slow"), "step_seconds": 8},
		},
	})
	runs := shared.waitScheduled(t, s.ID, 2, 3*time.Minute)
	if code, _ := shared.request(t, http.MethodPatch, "/api/v1/schedules/"+s.ID, map[string]any{"paused": true}, nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	runs = shared.waitScheduled(t, s.ID, len(runs), 2*time.Minute)
	d, err := c.ScheduleClient().GetHandle(context.Background(), s.ID).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Info.NumActionsSkippedOverlap == 0 {
		t.Fatalf("no run was skipped: %+v", d.Info)
	}
	// No two runs were ever running at once.
	type span struct{ from, to time.Time }
	var spans []span
	for _, tk := range runs {
		got := shared.get(t, tk.ID)
		if got.Status != "completed" || got.StartedAt == nil || got.CompletedAt == nil {
			t.Fatalf("run %+v", got)
		}
		from, _ := time.Parse(time.RFC3339, *got.StartedAt)
		to, _ := time.Parse(time.RFC3339, *got.CompletedAt)
		spans = append(spans, span{from, to})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Fatalf("runs overlapped: %+v", spans)
		}
	}
}

func TestScheduleBadRequests(t *testing.T) {
	t.Parallel()
	template := map[string]any{"name": "x", "agent_id": "agent-sched", "runner_id": "local"}
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "bad cron", "cron": "0 2 * *", "template": template}, "cron"},
		{map[string]any{"name": "bad zone", "cron": "0 2 * * *", "time_zone": "Nowhere/Land", "template": template}, "time_zone"},
		{map[string]any{"name": "no spec", "template": template}, "cron"},
		{map[string]any{"name": "bad template", "cron": "@daily", "template": map[string]any{"name": "x", "agent_id": "a"}}, "template.runner_id"},
		{map[string]any{"name": "drift apply", "kind": "drift", "cron": "@daily", "template": map[string]any{"name": "x", "agent_id": "a", "runner_id": "local",
			"parameters": map[string]any{"action": "apply", "workspace": "w"}}}, "template.parameters.action"},
	} {
		var e struct {
			Error struct {
				Code    string         `json:"code"`
				Details map[string]any `json:"details"`
			} `json:"error"`
		}
		if code, _ := shared.request(t, http.MethodPost, "/api/v1/schedules", c.body, &e); code != 400 || e.Error.Code != "bad_request" || e.Error.Details["field"] != c.field {
			t.Errorf("%v: %d %+v, want field %s", c.body["name"], code, e, c.field)
		}
	}
}

// TestClientSchedules drives the schedule routes through package client
// against the real binary.
func TestClientSchedules(t *testing.T) {
	t.Parallel()
	ctx := waitCtx(t, 3*time.Minute)
	c := newClient(t, shared.api, shared.key)
	tpl := api.CreateTask{Name: "client scheduled", AgentID: "agent-client-sched", RunnerID: "local",
		Parameters: map[string]any{"files": fixture(t, "five"), "action": "plan"}}
	_, err := c.CreateSchedule(ctx, api.NewSchedule{Name: "bad", Cron: "0 2 * *", Template: tpl})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || !errors.Is(err, client.ErrBadRequest) || apiErr.Details["field"] != "cron" {
		t.Fatalf("bad cron: %v", err)
	}
	s, err := c.CreateSchedule(ctx, api.NewSchedule{Name: "client", Interval: "1h", Paused: true, Template: tpl})
	if err != nil || s.Interval == nil || !s.Paused {
		t.Fatalf("create: %+v %v", s, err)
	}
	if _, err := c.TriggerSchedule(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	runs := shared.waitScheduled(t, s.ID, 1, 2*time.Minute)
	page, err := c.ListTasks(ctx, client.ListOptions{Schedule: s.ID})
	if err != nil || page.Total != 1 || page.Tasks[0].ID != runs[0].ID || page.Tasks[0].Status != "completed" {
		t.Fatalf("tasks of the schedule: %+v %v", page, err)
	}
	cron := "30 4 * * *"
	up, err := c.UpdateSchedule(ctx, s.ID, api.SchedulePatch{Cron: &cron})
	if err != nil || up.Cron == nil || *up.Cron != cron || up.Interval != nil || !up.Paused {
		t.Fatalf("update: %+v %v", up, err)
	}
	got, err := c.GetSchedule(ctx, s.ID)
	if err != nil || len(got.RecentRuns) != 1 || got.RecentRuns[0].TaskID != runs[0].ID {
		t.Fatalf("get: %+v %v", got, err)
	}
	if list, err := c.ListSchedules(ctx, client.ScheduleListOptions{Kind: "task", Limit: 1000}); err != nil || list.Total < 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := c.DeleteSchedule(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSchedule(ctx, s.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}
