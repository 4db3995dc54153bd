package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Drift is result.drift as a client sees it.
type Drift struct {
	Drifted   bool `json:"drifted"`
	Resources []struct {
		Address           string   `json:"address"`
		Actions           []string `json:"actions"`
		ChangedAttributes []string `json:"changed_attributes"`
		Source            string   `json:"source"`
	} `json:"resources"`
	RemediationTaskID string `json:"remediation_task_id"`
}

// driftOf reads a task's result.drift.
func driftOf(t *testing.T, id string) Drift {
	t.Helper()
	var tk struct {
		Status string `json:"status"`
		Result struct {
			Drift *Drift `json:"drift"`
		} `json:"result"`
	}
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/tasks/"+id, nil, &tk); code != 200 || tk.Status != "completed" || tk.Result.Drift == nil {
		t.Fatalf("drift task %s: %d %+v\n%v", id, code, tk, shared.logs(t, id, "?level=warn,error"))
	}
	return *tk.Result.Drift
}

// TestDriftDetection lets the real world move under an applied workspace
// (a time_rotating of the time provider, served offline from a filesystem
// mirror, whose rotation time passes) and checks a drift schedule's task
// reports it, and that a workspace nothing moved under reports none.
func TestDriftDetection(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		if mirrorErr != nil {
			t.Skipf("no provider mirror: %v", mirrorErr)
		}
		agent := "agent-drift-" + string(eng)
		apply := func(ws string, at time.Time) map[string]any {
			params := eng.params(map[string]any{"files": fixture(t, "drift"), "workspace": ws,
				"rotate_at": at.UTC().Format(time.RFC3339)})
			tk := shared.create(t, map[string]any{"name": "apply " + ws, "agent_id": agent, "runner_id": "local", "parameters": params})
			if s := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal); s[len(s)-1].Status != "completed" {
				t.Fatalf("apply %s: %+v %v", ws, s[len(s)-1], shared.logs(t, tk.ID, "?level=error"))
			}
			return params
		}
		suffix := fmt.Sprintf("%s-%d", eng, time.Now().UnixNano())
		// A webhook for drift.detected of this subtest's agent.
		rcv := newHookServer(t, hookSecret)
		createHook(t, shared, rcv.URL, agent, "drift.detected")

		// Nothing moved: a drift check says so.
		steady := apply("steady-"+suffix, time.Now().Add(time.Hour))
		steady["action"], steady["detect_drift"] = "plan", true
		check := shared.create(t, map[string]any{"name": "check steady", "agent_id": agent, "runner_id": "local", "parameters": steady})
		shared.waitStatus(t, check.ID, 2*time.Minute, terminal)
		if d := driftOf(t, check.ID); d.Drifted || len(d.Resources) != 0 {
			t.Fatalf("unchanged workspace: %+v", d)
		}

		// The rotation time passes: the drift schedule's task finds it.
		at := time.Now().Add(3 * time.Second).Truncate(time.Second)
		moving := apply("moving-"+suffix, at)
		s := shared.createSchedule(t, map[string]any{
			"name": "drift " + suffix, "kind": "drift", "cron": "0 2 * * *", "paused": true,
			"template": map[string]any{"name": "nightly drift", "agent_id": agent, "runner_id": "local", "parameters": moving},
		})
		if s.Kind != "drift" || s.Template["parameters"].(map[string]any)["detect_drift"] != true {
			t.Fatalf("drift schedule %+v", s)
		}
		time.Sleep(time.Until(at.Add(time.Second)))
		if code, _ := shared.request(t, http.MethodPost, "/api/v1/schedules/"+s.ID+"/trigger", nil, nil); code != 200 {
			t.Fatalf("trigger: %d", code)
		}
		runs := shared.waitScheduled(t, s.ID, 1, 2*time.Minute)
		d := driftOf(t, runs[0].ID)
		var gone bool
		for _, r := range d.Resources {
			gone = gone || (r.Address == "time_rotating.key" && r.Source == "drift" && len(r.Actions) == 1 && r.Actions[0] == "delete")
			if r.Address == "terraform_data.steady" {
				t.Errorf("an unchanged resource listed: %+v", r)
			}
		}
		if !d.Drifted || !gone {
			t.Fatalf("drift %+v", d)
		}
		// The webhook got drift.detected of that check, signed, with the
		// task and its drift; none of the steady workspace's check.
		waitFor(t, time.Minute, "drift.detected delivered", func() bool { return len(rcv.accepted(runs[0].ID)) > 0 })
		dl := rcv.accepted(runs[0].ID)[0]
		if dl.ev.Type != "drift.detected" || dl.verified != nil || dl.header.Get("X-Terratask-Event") != "drift.detected" ||
			dl.ev.Task.Result == nil || dl.ev.Task.Result.Drift == nil || !dl.ev.Task.Result.Drift.Drifted {
			t.Fatalf("delivery %+v (verified: %v)", dl.ev, dl.verified)
		}
		if len(rcv.accepted(check.ID)) != 0 {
			t.Fatalf("drift.detected for a check that found none: %+v", rcv.accepted(check.ID))
		}
		// The schedule says its latest check drifted.
		var got Schedule
		if code, _ := shared.request(t, http.MethodGet, "/api/v1/schedules/"+s.ID, nil, &got); code != 200 ||
			got.Drifted == nil || !*got.Drifted || got.DriftTaskID != runs[0].ID {
			t.Fatalf("schedule after a drifted check: %d %+v", code, got)
		}
		// A drift check never applies: the workspace still drifts.
		recheck := map[string]any{"action": "plan", "detect_drift": true}
		for k, v := range moving {
			recheck[k] = v
		}
		again := shared.create(t, map[string]any{"name": "check again", "agent_id": agent, "runner_id": "local", "parameters": recheck})
		shared.waitStatus(t, again.ID, 2*time.Minute, terminal)
		if d := driftOf(t, again.ID); !d.Drifted {
			t.Fatalf("second check: %+v", d)
		}
	})
}

// serverHasParameter reports whether the server's OpenAPI document lists a
// task parameter.
func serverHasParameter(t *testing.T, name string) bool {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas struct {
				Parameters struct {
					Properties map[string]any `json:"properties"`
				} `json:"Parameters"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/openapi.json", nil, &doc); code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	_, ok := doc.Components.Schemas.Parameters.Properties[name]
	return ok
}

// TestDriftRemediationWaitsForApproval: a drifted check with remediate
// "approval" starts an apply task of the same template, which plans and
// waits for a person.
func TestDriftRemediationWaitsForApproval(t *testing.T) {
	t.Parallel()
	if mirrorErr != nil {
		t.Skipf("no provider mirror: %v", mirrorErr)
	}
	// Plan approval is part of the product: its absence is a failure.
	if !serverHasParameter(t, "approval") {
		t.Fatal("the server's OpenAPI has no approval parameter: remediation cannot wait for approval")
	}
	ws := fmt.Sprintf("remediate-%d", time.Now().UnixNano())
	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	params := map[string]any{"files": fixture(t, "drift"), "workspace": ws, "rotate_at": at.UTC().Format(time.RFC3339)}
	tk := shared.create(t, map[string]any{"name": "apply", "agent_id": "agent-remediate", "runner_id": "local", "parameters": params})
	if s := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal); s[len(s)-1].Status != "completed" {
		t.Fatalf("apply: %+v", s[len(s)-1])
	}
	time.Sleep(time.Until(at.Add(time.Second)))
	check := map[string]any{"action": "plan", "detect_drift": true, "remediate": "approval"}
	for k, v := range params {
		check[k] = v
	}
	c := shared.create(t, map[string]any{"name": "check", "agent_id": "agent-remediate", "runner_id": "local",
		"metadata": map[string]any{"team": "infra"}, "parameters": check})
	shared.waitStatus(t, c.ID, 2*time.Minute, terminal)
	d := driftOf(t, c.ID)
	if !d.Drifted || d.RemediationTaskID != c.ID+"-remediation" {
		t.Fatalf("drift %+v", d)
	}
	// The control plane starts the remediation as it records the check's
	// end, which the status route may show a moment before (it answers a
	// running workflow's query): give it that moment.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		code, _ := shared.request(t, http.MethodGet, "/api/v1/tasks/"+d.RemediationTaskID+"/status", nil, nil)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("status of the remediation %s: %d", d.RemediationTaskID, code)
		}
	}
	seen := shared.waitStatus(t, d.RemediationTaskID, 2*time.Minute, func(s Status) bool {
		return s.Status == "waiting_approval" || terminal(s)
	})
	if last := seen[len(seen)-1]; last.Status != "waiting_approval" {
		t.Fatalf("remediation %+v: want waiting_approval\n%v", last, shared.logs(t, d.RemediationTaskID, "?level=warn,error"))
	}
	rem := shared.get(t, d.RemediationTaskID)
	if rem.Metadata["remediates"] != c.ID || rem.Metadata["team"] != "infra" || rem.AgentID != "agent-remediate" {
		t.Fatalf("remediation task %+v", rem)
	}
	if code, _ := shared.request(t, http.MethodPut, "/api/v1/tasks/"+rem.ID+"/cancel", nil, nil); code != 200 {
		t.Fatalf("cancel the remediation: %d", code)
	}
}
