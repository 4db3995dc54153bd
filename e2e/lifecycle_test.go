package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// processesWith lists live processes whose command line contains marker.
func processesWith(marker string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, marker) {
			found = append(found, filepath.Base(d)+": "+cmd)
		}
	}
	return found
}

func TestCancelDuringApplyStopsEverything(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		marker := fmt.Sprintf("tt-cancel-marker-%s-%d", eng, time.Now().UnixNano())
		ws := "cancel-" + marker[len(marker)-8:]
		tk := shared.create(t, map[string]any{
			"name": "hang", "agent_id": "agent-e2e", "runner_id": "local",
			"parameters": eng.params(map[string]any{"files": fixture(t, "hang"), "marker": marker, "workspace": ws}),
		})
		shared.waitStatus(t, tk.ID, 2*time.Minute, func(s Status) bool {
			return s.Metadata.CurrentStep == "applying" && len(processesWith(marker)) > 0
		})
		start := time.Now()
		var reply struct {
			ID          string  `json:"id"`
			Status      string  `json:"status"`
			CancelledAt *string `json:"cancelled_at"`
			CancelledBy string  `json:"cancelled_by"`
		}
		code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", nil, &reply)
		if code != 200 || reply.ID != tk.ID || (reply.Status != "cancelled" && reply.Status != "cancelling") ||
			reply.CancelledAt == nil || reply.CancelledBy != "dev-admin" {
			t.Fatalf("cancel reply %d %+v", code, reply)
		}
		seen := shared.waitStatus(t, tk.ID, time.Minute, terminal)
		if last := seen[len(seen)-1]; last.Status != "cancelled" {
			t.Fatalf("ended %+v", last)
		}
		t.Logf("cancel request to cancelled: %s", time.Since(start).Round(10*time.Millisecond))
		if left := processesWith(marker); len(left) > 0 {
			t.Fatalf("processes left after cancel: %v", left)
		}
		got := shared.get(t, tk.ID)
		if got.CancelledAt == nil || got.CancelledBy != "dev-admin" || got.Result.Error == nil || got.Result.Error.Code != "cancelled" {
			t.Fatalf("cancelled task %+v", got)
		}
		var where bool
		for _, l := range shared.logs(t, tk.ID, "?level=warn") {
			if strings.Contains(l.Message, "cancelled by dev-admin during step applying") {
				where = true
			}
		}
		if !where {
			t.Fatal("logs do not say where the task stopped")
		}
		// A second cancel is a conflict that reports the status.
		var e struct {
			Error struct {
				Code    string         `json:"code"`
				Details map[string]any `json:"details"`
			} `json:"error"`
		}
		if code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", nil, &e); code != 409 || e.Error.Details["status"] != "cancelled" {
			t.Fatalf("second cancel: %d %+v", code, e)
		}
		// The state lock was released: the next task on the workspace runs.
		next := shared.create(t, map[string]any{
			"name": "after-cancel", "agent_id": "agent-e2e", "runner_id": "local",
			"parameters": eng.params(map[string]any{"files": fixture(t, "workspace"), "workspace": ws}),
		})
		if s := shared.waitStatus(t, next.ID, 2*time.Minute, terminal); s[len(s)-1].Status != "completed" {
			t.Fatalf("task after cancel ended %+v: %v", s[len(s)-1], shared.logs(t, next.ID, "?level=error"))
		}
	})
}

func TestCancelPendingTaskWhoseRunnerNeverCame(t *testing.T) {
	t.Parallel()
	tk := shared.create(t, map[string]any{"name": "orphan", "agent_id": "agent-e2e", "runner_id": "nobody-home"})
	// The workflow runs and waits for the runner (its live state says so).
	seen := shared.waitStatus(t, tk.ID, time.Minute, func(s Status) bool {
		return s.Status != "pending" || s.Metadata.WaitingFor == "runner nobody-home"
	})
	if st := seen[len(seen)-1]; st.Status != "pending" || st.Metadata.WaitingFor != "runner nobody-home" {
		t.Fatalf("want pending, waiting for runner nobody-home, got %+v", st)
	}
	var reply struct {
		Status string `json:"status"`
	}
	start := time.Now()
	if code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", nil, &reply); code != 200 || reply.Status != "cancelled" {
		t.Fatalf("cancel of a pending task: %d %+v (after %s)", code, reply, time.Since(start))
	}
}

func TestRunnerUnavailableAndTimeout(t *testing.T) {
	t.Parallel()
	idle := shared.create(t, map[string]any{
		"name": "no-runner", "agent_id": "agent-e2e", "runner_id": "never-online",
		"parameters": map[string]any{"runner_timeout": "2s"},
	})
	marker := fmt.Sprintf("tt-timeout-marker-%d", time.Now().UnixNano())
	slow := shared.create(t, map[string]any{
		"name": "too-slow", "agent_id": "agent-e2e", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "hang"), "marker": marker, "timeout": "5s"},
	})
	for id, code := range map[string]string{idle.ID: "runner_unavailable", slow.ID: "timeout"} {
		s := shared.waitStatus(t, id, time.Minute, terminal)
		if s[len(s)-1].Status != "failed" {
			t.Fatalf("%s ended %+v", id, s[len(s)-1])
		}
		got := shared.get(t, id)
		if got.Result.Error == nil || got.Result.Error.Code != code {
			t.Fatalf("%s: want code %s, got %+v", id, code, got.Result.Error)
		}
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Fatalf("processes left after timeout: %v", left)
	}
}

func TestWorkspaceQueueRunsTasksInOrder(t *testing.T) {
	t.Parallel()
	ws := fmt.Sprintf("queue-%d", time.Now().UnixNano())
	mk := func(name string) Task {
		return shared.create(t, map[string]any{
			"name": name, "agent_id": "agent-e2e", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "slow"), "workspace": ws, "step_seconds": 1},
		})
	}
	a := mk("first")
	b := mk("second")
	c := mk("third")
	// b waits for the workspace, pending, and says so.
	st := shared.waitStatus(t, b.ID, time.Minute, func(s Status) bool { return s.Metadata.WaitingFor != "" })
	if last := st[len(st)-1]; last.Status != "pending" || !strings.Contains(last.Metadata.WaitingFor, "workspace "+ws) {
		t.Fatalf("queued task %+v", last)
	}
	var reply struct {
		Status string `json:"status"`
	}
	if code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+b.ID+"/cancel", nil, &reply); code != 200 || reply.Status != "cancelled" {
		t.Fatalf("cancel of a queued task: %d %+v", code, reply)
	}
	for _, id := range []string{a.ID, c.ID} {
		if s := shared.waitStatus(t, id, 2*time.Minute, terminal); s[len(s)-1].Status != "completed" {
			t.Fatalf("%s ended %+v", id, s[len(s)-1])
		}
	}
	ga, gb, gc := shared.get(t, a.ID), shared.get(t, b.ID), shared.get(t, c.ID)
	if gb.Status != "cancelled" || gb.StartedAt != nil {
		t.Fatalf("cancelled queued task %+v", gb)
	}
	aDone, _ := time.Parse(time.RFC3339, *ga.CompletedAt)
	cStart, _ := time.Parse(time.RFC3339, *gc.StartedAt)
	if cStart.Before(aDone) {
		t.Fatalf("third task started at %s, before the first completed at %s", cStart, aDone)
	}
}

func TestRunnersReportLiveness(t *testing.T) {
	t.Parallel()
	type runner struct {
		ID       string         `json:"id"`
		Status   string         `json:"status"`
		LastSeen *string        `json:"last_seen"`
		Workers  int            `json:"workers"`
		Hosts    []any          `json:"hosts"`
		Tasks    map[string]int `json:"tasks"`
	}
	var local runner
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/runners/local", nil, &local); code != 200 {
		t.Fatalf("runner local: %d", code)
	}
	if local.Status != "online" || local.Workers < 1 || local.LastSeen == nil || len(local.Hosts) < 1 {
		t.Fatalf("the dev runner is not online: %+v", local)
	}
	var ghost runner
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/runners/ghost-runner-x", nil, &ghost); code != 200 || ghost.Status != "offline" || ghost.Workers != 0 {
		t.Fatalf("unserved runner: %d %+v", code, ghost)
	}
	// A task waiting for a runner that never comes shows on the list.
	shared.create(t, map[string]any{"name": "waits", "agent_id": "agent-e2e", "runner_id": "runner-down"})
	var all []runner
	if code, h := shared.request(t, http.MethodGet, "/api/v1/runners", nil, &all); code != 200 || h.Get("X-Total-Count") == "" {
		t.Fatalf("runners list: %d", code)
	}
	var down *runner
	for i := range all {
		if all[i].ID == "runner-down" {
			down = &all[i]
		}
	}
	if down == nil || down.Status != "offline" || down.Tasks["pending"] < 1 {
		t.Fatalf("runner-down in the list: %+v (all %+v)", down, all)
	}
}
