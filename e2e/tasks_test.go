package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture reads testdata/<name> into a `files` parameter.
func fixture(t testing.TB, name string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// checkProgress asserts progress never decreases and is 100 only at the end.
func checkProgress(t *testing.T, seen []Status) {
	t.Helper()
	prev := 0
	for i, s := range seen {
		if s.Progress < prev {
			t.Fatalf("progress went back from %d to %d at poll %d: %+v", prev, s.Progress, i, seen)
		}
		if s.Progress == 100 && s.Status != "completed" {
			t.Fatalf("progress 100 while %s", s.Status)
		}
		prev = s.Progress
	}
}

func TestSeedCreateExampleRunsDemoModule(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		// The seed's own example, as written: no module named, so the runner's
		// default (the demo module) runs with app_name and deploy_strategy.
		body := map[string]any{
			"name":        "Deploy Application",
			"description": "Deploy application to production environment",
			"agent_id":    "agent-456",
			"runner_id":   "local",
			"metadata":    map[string]any{"environment": "production", "version": "1.2.0", "priority": "high"},
			"parameters":  eng.params(map[string]any{"app_name": "my-app", "deploy_strategy": "rolling"}),
		}
		tk := shared.create(t, body)
		if tk.Name != "Deploy Application" || tk.AgentID != "agent-456" || tk.Metadata["priority"] != "high" || tk.Progress != 0 {
			t.Fatalf("create echoed %+v", tk)
		}
		seen := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
		last := seen[len(seen)-1]
		if last.Status != "completed" || last.Progress != 100 {
			t.Fatalf("demo task ended %+v\n%s", last, shared.output.String())
		}
		checkProgress(t, seen)
		if last.Metadata.TotalSteps != 4 || last.Metadata.StepsCompleted != 4 {
			t.Fatalf("steps: %+v", last.Metadata)
		}

		got := shared.get(t, tk.ID)
		if got.Status != "completed" || got.StartedAt == nil || got.CompletedAt == nil || got.Result == nil || got.Result.Error != nil {
			t.Fatalf("task detail %+v", got)
		}
		if got.Result.Output["app_name"] != "my-app" {
			t.Fatalf("demo outputs %v: want app_name my-app", got.Result.Output)
		}
		logs := shared.logs(t, tk.ID, "")
		if len(logs) < 10 {
			t.Fatalf("only %d log entries", len(logs))
		}
		checkLogsOrdered(t, logs)
		levels := map[string]bool{}
		components := map[string]bool{}
		for _, l := range logs {
			levels[l.Level] = true
			components[fmt.Sprint(l.Metadata["component"])] = true
		}
		if !levels["info"] || !components["terraform"] || !components["runner"] || !components["workflow"] {
			t.Fatalf("levels %v components %v", levels, components)
		}
	})
}

func checkLogsOrdered(t *testing.T, logs []LogEntry) {
	t.Helper()
	for i := 1; i < len(logs); i++ {
		a, _ := time.Parse(time.RFC3339Nano, logs[i-1].Timestamp)
		b, _ := time.Parse(time.RFC3339Nano, logs[i].Timestamp)
		// Terraform stamps its lines itself; allow its sub-millisecond skew.
		if b.Before(a.Add(-50 * time.Millisecond)) {
			t.Fatalf("log %d (%s) is older than log %d (%s)", i, logs[i].Timestamp, i-1, logs[i-1].Timestamp)
		}
	}
}

// checkNoLineDoubledOrLost checks a task's logs: a runner line is named by
// its run, step, attempt and seq (metadata), so no name may repeat (a line
// stored twice) and each attempt's seqs run from 1 without a gap (a line
// lost). Lines that look alike are fine: an interrupted apply ends with one
// "Error: execution halted" per halted node, in one millisecond. The
// workflow's own lines, which carry no seq, must not repeat.
func checkNoLineDoubledOrLost(t *testing.T, logs []LogEntry) {
	t.Helper()
	seen := map[string]bool{}
	streams := map[string]map[int]bool{}
	for _, l := range logs {
		m := l.Metadata
		var k string
		switch seq, ok := m["seq"].(float64); {
		case ok:
			stream := fmt.Sprint(m["run"], "/", m["step"], "/", m["attempt"])
			if streams[stream] == nil {
				streams[stream] = map[int]bool{}
			}
			streams[stream][int(seq)] = true
			k = fmt.Sprint(stream, "#", int(seq))
		case m["component"] == "terraform" || m["component"] == "runner":
			t.Fatalf("runner log entry without its seq: %+v", l)
		default:
			k = fmt.Sprint(m["component"], "/", l.Timestamp, "/", l.Message)
		}
		if seen[k] {
			t.Fatalf("duplicated log entry %s: %+v", k, l)
		}
		seen[k] = true
	}
	for stream, seqs := range streams {
		for i := 1; i <= len(seqs); i++ {
			if !seqs[i] {
				t.Fatalf("stream %s lost line %d: has %d lines up to %d", stream, i, len(seqs), maxKey(seqs))
			}
		}
	}
}

func maxKey(m map[int]bool) int {
	n := 0
	for k := range m {
		n = max(n, k)
	}
	return n
}

func TestOutputsWithSensitiveRedacted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tk := shared.create(t, map[string]any{
			"name": "five", "agent_id": "agent-e2e", "runner_id": "local",
			"parameters": eng.params(map[string]any{
				"files":               fixture(t, "five"),
				"greeting":            "hi",
				"sensitive_variables": map[string]any{"api_token": "s3cr3t-t0ken-value"},
			}),
		})
		seen := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
		// A finished task's status comes from the store, which keeps its
		// plan's counts (the live counts planned_changes and changes_done
		// end with the workflow): five to add, nothing else.
		last := seen[len(seen)-1]
		if p := last.Metadata.Plan; last.Status != "completed" || p == nil || p.Add != 5 || p.Change != 0 || p.Destroy != 0 || p.Replace != 0 {
			t.Fatalf("ended %+v, plan %+v", last, last.Metadata.Plan)
		}
		for _, s := range seen {
			if s.Metadata.ChangesDone > 5 || s.Metadata.PlannedChanges != 0 && s.Metadata.PlannedChanges != 5 {
				t.Fatalf("live counts %d of %d planned, want at most 5 of 5", s.Metadata.ChangesDone, s.Metadata.PlannedChanges)
			}
		}
		got := shared.get(t, tk.ID)
		out := got.Result.Output
		if out["greeting"] != "hi" {
			t.Fatalf("outputs %v", out)
		}
		names, _ := out["names"].([]any)
		if len(names) != 5 || names[0] != "hi-0" {
			t.Fatalf("names output %v", out["names"])
		}
		if out["token"] == "s3cr3t-t0ken-value" {
			t.Fatal("sensitive output leaked")
		}
		raw, _ := json.Marshal(got)
		logs := shared.logs(t, tk.ID, "")
		rawLogs, _ := json.Marshal(logs)
		for _, blob := range [][]byte{raw, rawLogs} {
			if strings.Contains(string(blob), "s3cr3t-t0ken-value") {
				t.Fatalf("secret value in API output: %s", blob)
			}
		}
		var applied int
		for _, l := range logs {
			if l.Metadata["type"] == "apply_complete" {
				applied++
				if !strings.HasPrefix(fmt.Sprint(l.Metadata["resource"]), "terraform_data.item[") {
					t.Fatalf("apply_complete without resource address: %+v", l)
				}
			}
		}
		if applied != 5 {
			t.Fatalf("%d apply_complete log entries, want 5", applied)
		}
	})
}

func TestBrokenConfigFailsWithDiagnostics(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tk := shared.create(t, map[string]any{
			"name": "broken", "agent_id": "agent-e2e", "runner_id": "local",
			"parameters": eng.params(map[string]any{"files": fixture(t, "broken")}),
		})
		seen := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
		if last := seen[len(seen)-1]; last.Status != "failed" || last.Progress == 100 {
			t.Fatalf("broken config ended %+v", last)
		}
		got := shared.get(t, tk.ID)
		if got.Result == nil || got.Result.Error == nil {
			t.Fatalf("no result.error: %+v", got)
		}
		e := got.Result.Error
		if e.Code == "" || !strings.HasPrefix(e.Message, eng.binary()+" ") {
			t.Fatalf("error %+v", e)
		}
		diags, _ := e.Details["diagnostics"].([]any)
		if len(diags) == 0 {
			t.Fatalf("no diagnostics in %+v", e.Details)
		}
		d := diags[0].(map[string]any)
		if !strings.Contains(strings.ToLower(fmt.Sprint(d["summary"])), "unsupported argument") {
			t.Fatalf("diagnostic %v", d)
		}
		var errs int
		for _, l := range shared.logs(t, tk.ID, "?level=error") {
			if l.Level != "error" {
				t.Fatalf("level filter returned %+v", l)
			}
			errs++
		}
		if errs == 0 {
			t.Fatal("no error log entries for a failed task")
		}
	})
}

func TestPlanOnlyThenApplyThenDestroyOnOneWorkspace(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		ws := fmt.Sprintf("ws-%s-%d", eng, time.Now().UnixNano())
		run := func(action string, size int) (Task, []Status) {
			tk := shared.create(t, map[string]any{
				"name": action, "agent_id": "agent-e2e", "runner_id": "local",
				"parameters": eng.params(map[string]any{"files": fixture(t, "workspace"), "workspace": ws, "action": action, "size": size}),
			})
			seen := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
			if last := seen[len(seen)-1]; last.Status != "completed" {
				t.Fatalf("%s ended %+v\n%v", action, last, shared.logs(t, tk.ID, "?level=error"))
			}
			return shared.get(t, tk.ID), seen
		}
		planned := func(tk Task) int {
			n := 0
			for _, l := range shared.logs(t, tk.ID, "") {
				if l.Metadata["type"] == "planned_change" && l.Metadata["step"] == "planning" {
					n++
				}
			}
			return n
		}

		plan, seen := run("plan", 3)
		if seen[len(seen)-1].Metadata.TotalSteps != 3 {
			t.Fatalf("plan-only steps %+v", seen[len(seen)-1].Metadata)
		}
		if n := planned(plan); n != 3 {
			t.Fatalf("plan-only planned %d changes, want 3", n)
		}
		// A plan changes nothing: the apply still has 3 to create.
		apply, _ := run("apply", 3)
		if n := planned(apply); n != 3 {
			t.Fatalf("apply planned %d changes, want 3", n)
		}
		if fmt.Sprint(apply.Result.Output["count"]) != "3" {
			t.Fatalf("apply outputs %v", apply.Result.Output)
		}
		// The state persisted: growing to 4 plans one change only.
		grow, _ := run("apply", 4)
		if n := planned(grow); n != 1 {
			t.Fatalf("second apply planned %d changes, want 1 (state not kept?)", n)
		}
		destroy, seen := run("destroy", 4)
		if n := planned(destroy); n != 4 {
			t.Fatalf("destroy planned %d changes, want 4", n)
		}
		var destroySteps []string
		for _, s := range seen {
			if s.Metadata.CurrentStep != "" && (len(destroySteps) == 0 || destroySteps[len(destroySteps)-1] != s.Metadata.CurrentStep) {
				destroySteps = append(destroySteps, s.Metadata.CurrentStep)
			}
		}
		for _, s := range destroySteps {
			if s == "applying" {
				t.Fatalf("destroy task showed step applying: %v", destroySteps)
			}
		}
		// Nothing left: a new plan wants to create all 4 again.
		again, _ := run("plan", 4)
		if n := planned(again); n != 4 {
			t.Fatalf("plan after destroy planned %d, want 4", n)
		}
	})
}

func TestTwoTasksInitialiseAtOnce(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ids[i] = shared.create(t, map[string]any{
				"name": fmt.Sprintf("concurrent-%d", i), "agent_id": "agent-e2e", "runner_id": "local",
				"parameters": map[string]any{"files": fixture(t, "five")},
			}).ID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		seen := shared.waitStatus(t, id, 2*time.Minute, terminal)
		if last := seen[len(seen)-1]; last.Status != "completed" {
			t.Fatalf("%s ended %+v: %v", id, last, shared.logs(t, id, "?level=error"))
		}
	}
}

func TestListAndAuth(t *testing.T) {
	t.Parallel()
	listAgent := uniqueAgent("agent-list")
	tk := shared.create(t, map[string]any{
		"name": "listed", "agent_id": listAgent, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "workspace"), "action": "plan"},
	})
	var list []Task
	code, h := shared.request(t, http.MethodGet, "/api/v1/tasks/agent/"+listAgent, nil, &list)
	if code != 200 || len(list) != 1 || list[0].ID != tk.ID || h.Get("X-Total-Count") != "1" {
		t.Fatalf("agent list: %d %v %v", code, list, h)
	}
	// Unauthenticated and unknown keys are 401 with the seed's error body.
	other := *shared
	other.key = "not-a-key"
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if code, _ := other.request(t, http.MethodGet, "/api/v1/tasks/"+tk.ID, nil, &e); code != 401 || e.Error.Code != "unauthorized" {
		t.Fatalf("bad key: %d %+v", code, e)
	}
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/tasks/task-doesnotexist", nil, &e); code != 404 || e.Error.Code != "not_found" {
		t.Fatalf("missing task: %d %+v", code, e)
	}
	if code, _ := shared.request(t, http.MethodPost, "/api/v1/tasks", map[string]any{"name": "x"}, &e); code != 400 || e.Error.Code != "bad_request" {
		t.Fatalf("missing fields: %d %+v", code, e)
	}
	shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)

	// Sort orders, on tasks of an agent of this test alone (the shared dev
	// holds every parallel test's): one, two and three created in turn;
	// two, three, then one cancelled, each once the workflow of the one
	// before has closed (its last change recorded); four created last and
	// left pending. So created_at orders them 1 2 3 4, updated_at 2 3 1 4,
	// status pending before cancelled and ties by ID, each reversed by
	// order=desc (the default).
	agent := uniqueAgent("agent-sort")
	park := func(name string) string {
		return shared.create(t, map[string]any{"name": name, "agent_id": agent, "runner_id": "nobody-serves-this"}).ID
	}
	made := []string{park("sorted 1"), park("sorted 2"), park("sorted 3")}
	for _, id := range []string{made[1], made[2], made[0]} {
		if code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+id+"/cancel", nil, nil); code != 200 {
			t.Fatalf("cancel %s: %d", id, code)
		}
		waitClosed(t, shared, id)
	}
	four := park("sorted 4")
	defer shared.request(t, http.MethodPut, "/api/v1/tasks/"+four+"/cancel", nil, nil)
	cancelled := []string{made[0], made[1], made[2]}
	sort.Strings(cancelled)
	reversed := func(ids []string) []string {
		out := slices.Clone(ids)
		slices.Reverse(out)
		return out
	}
	byCreation := []string{made[0], made[1], made[2], four}
	byUpdate := []string{made[1], made[2], made[0], four}
	byStatus := append(slices.Clone(cancelled), four) // "cancelled" < "pending"
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"sort=created_at&order=asc", byCreation},
		{"sort=created_at&order=desc", reversed(byCreation)},
		{"", reversed(byCreation)},
		{"sort=updated_at&order=asc", byUpdate},
		{"sort=updated_at", reversed(byUpdate)},
		{"sort=status&order=asc", byStatus},
		{"sort=status", reversed(byStatus)},
	} {
		for _, base := range []string{"/api/v1/tasks?agent=" + agent + "&", "/api/v1/tasks/agent/" + agent + "?"} {
			var page []Task
			if code, _ := shared.request(t, http.MethodGet, base+c.query, nil, &page); code != 200 {
				t.Fatalf("list %s%s: %d", base, c.query, code)
			}
			var got []string
			for _, p := range page {
				got = append(got, p.ID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("list %s%s: %v, want %v", base, c.query, got, c.want)
			}
		}
	}
}

// waitClosed waits until a task's workflow has closed: the end event of
// its log stream, which waits for that.
func waitClosed(t testing.TB, p *devProc, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var s streamed
	if !p.follow(t, ctx, "/api/v1/tasks/"+id+"/logs?follow=true", "").readUntil(t, &s, nil) {
		t.Fatalf("task %s: no end event", id)
	}
}
