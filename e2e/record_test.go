package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// recordEnv is the environment of the history recorder's scenarios: a
// fresh `terratask dev` and a Temporal client of it.
type recordEnv struct {
	dev    *devProc
	client client.Client
}

// recordScenarios are the runs whose task workflow histories the replay
// tests keep (workflows/testdata/<name>.json). Each runs against the
// recorder's dev and returns the ID of the task whose history to keep,
// once it has ended. Add a scenario here when the workflow gets a new
// version.
var recordScenarios = slices.Concat(
	// The v1 workflow under the payload codec (ops): encrypted histories.
	lifecycleScenarios("v1-encrypted-", "record "),
	// The claim-install version (GetVersion "claim-install", perf): the
	// claim installs, the pickup and the first step starts share a Record,
	// a successful apply cleans up itself.
	lifecycleScenarios("v3-", "record v3 "),
	// The host-lease version (GetVersion "lease", issue 27): the claim
	// heartbeats and retries quickly, a host step's heartbeat timeout ends
	// the block, a new block's claim avoids the lost hosts.
	lifecycleScenarios("v4-", "record v4 "),
	// The decision-proof version (GetVersion "decision-proof", issue 20):
	// decisions count only with the secret key's proof.
	lifecycleScenarios("v5-", "record v5 "),
	otherScenarios,
	// The org-runners version (GetVersion "org-runners", issue 20): claims
	// go to the org's runner queue, every payload under the org's key, an
	// unencrypted input refused; and the paths issue 26 asked a history of
	// under the current version.
	lifecycleScenarios("v6-", "record v6 "),
	v6Scenarios,
	// The policy version (GetVersion "policy", issue 21): the org's
	// policies checked before the workspace and the claim, and after the
	// plan when one reads plans.
	v7Scenarios,
	otherWorkflowScenarios,
)

// otherWorkflowScenarios are histories of the other registered workflows:
// the delivery workflow (terratask.Delivery) and the workspace queue
// (terratask.WorkspaceQueue). Both wait for more work when they are
// recorded.
var otherWorkflowScenarios = []recordScenario{
	// A task's events to a webhook whose receiver refuses each event's
	// first attempt: each delivery activity succeeds on its second
	// attempt, in order.
	{"vd1-delivered-after-retry", func(t *testing.T, e recordEnv) string {
		rcv := newHookServer(t, hookSecret)
		rcv.respond = func(ev api.Event, attempt int) int {
			if ev.Task != nil && attempt == 1 { // not the ping
				return http.StatusInternalServerError
			}
			return http.StatusOK
		}
		hook := createHook(t, e.dev, rcv.URL, "agent-record-hook")
		tk := e.dev.create(t, map[string]any{"name": "record delivery", "agent_id": "agent-record-hook", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "echo"), "word": "delivered"}})
		waitEnd(t, e.dev, tk.ID)
		waitFor(t, 2*time.Minute, "the task's last event delivered", func() bool {
			acc := rcv.accepted(tk.ID)
			return len(acc) > 0 && acc[len(acc)-1].ev.Type == "task.completed"
		})
		return events.WorkflowID(tk.ID, hook.ID)
	}},
	// The queue of a shared workspace: two tasks, one after the other.
	{"vq1-two-tasks", func(t *testing.T, e recordEnv) string {
		var ids []string
		for i := range 2 {
			ids = append(ids, e.dev.create(t, map[string]any{"name": fmt.Sprintf("record queue %d", i), "agent_id": "agent-record", "runner_id": "local",
				"parameters": map[string]any{"files": fixture(t, "workspace"), "workspace": "rec-vq1"}}).ID)
		}
		for _, id := range ids {
			waitEnd(t, e.dev, id)
		}
		return task.WorkspaceQueueID("default", "rec-vq1")
	}},
}

// v6Scenarios are the current version's runs besides the lifecycle ones.
// recorderPolicy is the recorder's org's policy in the v7 scenarios: it
// decides only for the tasks named after it, and it reads plans, so every
// v7 task has both checks.
const recorderPolicy = `package recorder

deny contains "record v7: denied before the plan" if input.terratask.task.name == "record v7 denied pre"

deny contains msg if {
	input.terratask.task.name == "record v7 denied post"
	some rc in input.resource_changes
	msg := sprintf("record v7: %s may not change", [rc.address])
}

require_approval contains "record v7: a person looks first" if {
	input.terratask.task.name == "record v7 approval by policy"
	count(input.resource_changes) > 0
}

warn contains "record v7: warned" if input.terratask.task.name == "record v7 warned"

level := "a" if input.terratask.task.name == "record v7 policy error"

level := "b" if input.terratask.task.name == "record v7 policy error"

deny contains "never" if level == "c"
`

// v7Task puts the recorder's policy (unchanged puts write nothing) and
// creates a v7 task.
func v7Task(t *testing.T, e recordEnv, what string, params map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"rego": recorderPolicy, "description": "the recorder's"})
	if r := e.dev.call(t, http.MethodPut, "/api/v1/policies/recorder", e.dev.key, body); r.code != http.StatusOK && r.code != http.StatusCreated {
		t.Fatalf("putting the recorder's policy: %d %s", r.code, r.body)
	}
	return e.dev.create(t, map[string]any{"name": "record v7 " + what, "agent_id": "agent-record", "runner_id": "local",
		"parameters": params}).ID
}

var v7Scenarios = []recordScenario{
	{"v7-completed", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "completed", map[string]any{"files": fixture(t, "echo"), "word": "recorded",
			"sensitive_variables": map[string]any{"token": "recorded-secret"}})
	}},
	{"v7-plan", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "plan", map[string]any{"files": fixture(t, "workspace"), "action": "plan"})
	}},
	{"v7-failed", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "failed", map[string]any{"files": fixture(t, "broken")})
	}},
	{"v7-denied-pre", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "denied pre", map[string]any{"files": fixture(t, "echo"), "word": "denied"})
	}},
	{"v7-denied-post", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "denied post", map[string]any{"files": fixture(t, "echo"), "word": "denied"})
	}},
	{"v7-approved-by-policy", func(t *testing.T, e recordEnv) string {
		id := v7Task(t, e, "approval by policy", map[string]any{"files": fixture(t, "echo"), "word": "approved"})
		waitWaiting(t, e.dev, id)
		mustDecide(t, e.dev, id, "approve", `{"comment":"recorded"}`)
		return id
	}},
	{"v7-warned", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "warned", map[string]any{"files": fixture(t, "echo"), "word": "warned"})
	}},
	{"v7-policy-error", func(t *testing.T, e recordEnv) string {
		return v7Task(t, e, "policy error", map[string]any{"files": fixture(t, "echo"), "word": "error"})
	}},
}

var v6Scenarios = []recordScenario{
	{"v6-approved", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "approved", "rec-v6-approved", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "approve", `{"comment":"recorded"}`)
		return tk.ID
	}},
	{"v6-rejected", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "rejected", "rec-v6-rejected", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "reject", "")
		return tk.ID
	}},
	{"v6-approval-timeout", func(t *testing.T, e recordEnv) string {
		return e.dev.create(t, reviewBody(t, "timeout", "rec-v6-approval-timeout", 1,
			map[string]any{"approval": "required", "approval_timeout": "2s", "timeout": "1h"})).ID
	}},
	{"v6-cancelled-waiting", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "cancel", "rec-v6-cancel", 1, map[string]any{"approval": "required", "timeout": "1h"}))
		waitWaiting(t, e.dev, tk.ID)
		if r := e.dev.call(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", e.dev.key, nil); r.code != 200 {
			t.Fatalf("cancel: %d %s", r.code, r.body)
		}
		return tk.ID
	}},
	{"v6-timeout", func(t *testing.T, e recordEnv) string {
		return e.dev.create(t, map[string]any{"name": "record v6 timeout", "agent_id": "agent-record", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 3, "timeout": "8s"}}).ID
	}},
	{"v6-approved-by-parent", func(t *testing.T, e recordEnv) string {
		return runApprovingParent(t, e.client, e.dev.dataDir, "local", fmt.Sprintf("task-rec-v6-parent-%d", time.Now().UnixNano()))
	}},
	{"v6-scheduled-drift", func(t *testing.T, e recordEnv) string {
		s := e.dev.createSchedule(t, map[string]any{"name": "record v6 drift", "kind": "drift", "cron": "@daily", "paused": true,
			"template": map[string]any{"name": "record v6 drift check", "agent_id": "agent-record", "runner_id": "local",
				"parameters": map[string]any{"files": fixture(t, "workspace"), "workspace": "rec-v6-drift"}}})
		if code, _ := e.dev.request(t, http.MethodPost, "/api/v1/schedules/"+s.ID+"/trigger", nil, nil); code != http.StatusOK {
			t.Fatalf("trigger: %d", code)
		}
		return e.dev.waitScheduled(t, s.ID, 1, 2*time.Minute)[0].ID
	}},
	{"v6-workspace-queue", func(t *testing.T, e recordEnv) string {
		first := e.dev.create(t, map[string]any{"name": "record v6 queue 1", "agent_id": "agent-record", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "slow"), "workspace": "rec-v6-queue", "step_seconds": 1}})
		second := e.dev.create(t, map[string]any{"name": "record v6 queue 2", "agent_id": "agent-record", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "broken"), "workspace": "rec-v6-queue"}})
		waitEnd(t, e.dev, first.ID)
		waitEnd(t, e.dev, second.ID)
		return second.ID
	}},
	{"v6-host-lost", recordHostLost},
	// No runner serves the task's runner within its runner_timeout (the
	// recorder's dev serves only "local": no on-demand runners).
	{"v6-runner-unavailable", func(t *testing.T, e recordEnv) string {
		return e.dev.create(t, map[string]any{"name": "record v6 runner unavailable", "agent_id": "agent-record", "runner_id": "nobody-serves-this",
			"parameters": map[string]any{"files": fixture(t, "echo"), "runner_timeout": "2s"}}).ID
	}},
	// A task workflow started with an unencrypted input: refused.
	{"v6-plain-input", func(t *testing.T, e recordEnv) string {
		plain, err := client.Dial(client.Options{HostPort: e.dev.temporal, Namespace: "default",
			ConnectionOptions: devTemporalTLS(t, e.dev.dataDir)})
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		id := fmt.Sprintf("task-rec-v6-plain-%d", time.Now().UnixNano())
		in := task.Input{ID: id, Name: "plain", AgentID: "agent-record", RunnerID: "local", Org: "default", CreatedAt: time.Now().UTC(),
			Params: task.Params{Files: fixture(t, "echo"), Workspace: id}}
		if _, err := plain.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: task.ControlPlaneTaskQueue},
			task.WorkflowType, in); err != nil {
			t.Fatal(err)
		}
		return id
	}},
}

// recordScenario is one run of the recorder.
type recordScenario struct {
	name string
	run  func(t *testing.T, e recordEnv) string
}

// openScenarios record long-lived workflows (they wait for more work):
// their histories are written as they stand, without waiting for an end.
var openScenarios = map[string]bool{"vd1-delivered-after-retry": true, "vq1-two-tasks": true}

// lifecycleScenarios are a completed, a plan-only, a failed and a cancelled
// task, named prefix+"completed" and so on, each task named label+what.
func lifecycleScenarios(prefix, label string) []recordScenario {
	create := func(t *testing.T, e recordEnv, what string, params map[string]any) string {
		return e.dev.create(t, map[string]any{"name": label + what, "agent_id": "agent-record", "runner_id": "local",
			"parameters": params}).ID
	}
	return []recordScenario{
		{prefix + "completed", func(t *testing.T, e recordEnv) string {
			return create(t, e, "completed", map[string]any{"files": fixture(t, "echo"), "word": "recorded",
				"sensitive_variables": map[string]any{"token": "recorded-secret"}})
		}},
		{prefix + "plan", func(t *testing.T, e recordEnv) string {
			return create(t, e, "plan", map[string]any{"files": fixture(t, "workspace"), "action": "plan"})
		}},
		{prefix + "failed", func(t *testing.T, e recordEnv) string {
			return create(t, e, "failed", map[string]any{"files": fixture(t, "broken")})
		}},
		{prefix + "cancelled", func(t *testing.T, e recordEnv) string {
			id := create(t, e, "cancelled", map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 2})
			e.dev.waitStatus(t, id, 2*time.Minute, func(s Status) bool {
				return s.Metadata.CurrentStep == "applying" && s.Metadata.ChangesDone >= 1 || terminal(s)
			})
			if code, _ := e.dev.request(t, http.MethodPut, "/api/v1/tasks/"+id+"/cancel", nil, nil); code != http.StatusOK {
				t.Fatalf("cancel: %d", code)
			}
			return id
		}},
	}
}

// otherScenarios are the recorder's runs of one kind each.
var otherScenarios = []recordScenario{
	// The approval version (GetVersion "approval").
	{"v2-approved", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "approved", "rec-approved", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "approve", `{"comment":"recorded"}`)
		return tk.ID
	}},
	{"v2-rejected", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "rejected", "rec-rejected", 1, map[string]any{"approval": "destructive"}))
		waitEnd(t, e.dev, tk.ID) // create-only: applies at once
		tk = e.dev.create(t, reviewBody(t, "rejected", "rec-rejected", 2, map[string]any{"approval": "destructive"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "reject", "")
		return tk.ID
	}},
	{"v2-approval-timeout", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "timeout", "rec-timeout", 1, map[string]any{"approval": "required", "approval_timeout": "2s", "timeout": "1h"}))
		return tk.ID
	}},
	{"v2-cancelled-waiting", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "cancel", "rec-cancel", 1, map[string]any{"approval": "required", "timeout": "1h"}))
		waitWaiting(t, e.dev, tk.ID)
		if r := e.dev.call(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", e.dev.key, nil); r.code != 200 {
			t.Fatalf("cancel: %d %s", r.code, r.body)
		}
		return tk.ID
	}},
	{"v2-approved-by-parent", func(t *testing.T, e recordEnv) string {
		return runApprovingParent(t, e.client, e.dev.dataDir, "local", fmt.Sprintf("task-rec-parent-%d", time.Now().UnixNano()))
	}},
	// A run of a drift schedule (engines): no ID in the input (the
	// workflow's own, with the run's time), a drift result.
	{"v2-scheduled-drift", func(t *testing.T, e recordEnv) string {
		s := e.dev.createSchedule(t, map[string]any{"name": "record drift", "kind": "drift", "cron": "@daily", "paused": true,
			"template": map[string]any{"name": "record drift check", "agent_id": "agent-record", "runner_id": "local",
				"parameters": map[string]any{"files": fixture(t, "workspace"), "workspace": "rec-drift"}}})
		if code, _ := e.dev.request(t, http.MethodPost, "/api/v1/schedules/"+s.ID+"/trigger", nil, nil); code != http.StatusOK {
			t.Fatalf("trigger: %d", code)
		}
		return e.dev.waitScheduled(t, s.ID, 1, 2*time.Minute)[0].ID
	}},
	// The claim-install version, waiting for approval and scheduled.
	{"v3-approved", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "approved", "rec-v3-approved", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "approve", `{"comment":"recorded"}`)
		return tk.ID
	}},
	{"v3-rejected", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "rejected", "rec-v3-rejected", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "reject", "")
		return tk.ID
	}},
	{"v3-scheduled-drift", func(t *testing.T, e recordEnv) string {
		s := e.dev.createSchedule(t, map[string]any{"name": "record v3 drift", "kind": "drift", "cron": "@daily", "paused": true,
			"template": map[string]any{"name": "record v3 drift check", "agent_id": "agent-record", "runner_id": "local",
				"parameters": map[string]any{"files": fixture(t, "workspace"), "workspace": "rec-v3-drift"}}})
		if code, _ := e.dev.request(t, http.MethodPost, "/api/v1/schedules/"+s.ID+"/trigger", nil, nil); code != http.StatusOK {
			t.Fatalf("trigger: %d", code)
		}
		return e.dev.waitScheduled(t, s.ID, 1, 2*time.Minute)[0].ID
	}},
	// The host-lease version, waiting for approval, and losing its host.
	{"v4-approved", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "approved", "rec-v4-approved", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "approve", `{"comment":"recorded"}`)
		return tk.ID
	}},
	{"v4-host-lost", recordHostLost},
	// The decision-proof version: the API's decision (an update with a
	// proof), a parent's signed signal (a side effect checks it), and a
	// forged signal (refused: the side effect says so) before the API's.
	{"v5-approved", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "approved", "rec-v5-approved", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		mustDecide(t, e.dev, tk.ID, "approve", `{"comment":"recorded"}`)
		return tk.ID
	}},
	{"v5-approved-by-parent", func(t *testing.T, e recordEnv) string {
		return runApprovingParent(t, e.client, e.dev.dataDir, "local", fmt.Sprintf("task-rec-v5-parent-%d", time.Now().UnixNano()))
	}},
	{"v5-forged-signal", func(t *testing.T, e recordEnv) string {
		tk := e.dev.create(t, reviewBody(t, "forged", "rec-v5-forged", 1, map[string]any{"approval": "required"}))
		waitWaiting(t, e.dev, tk.ID)
		forged := task.Decision{Approve: true, By: "mallory", At: time.Now().UTC()}
		if err := e.client.SignalWorkflow(context.Background(), tk.ID, "", task.SignalDecision, forged); err != nil {
			t.Fatal(err)
		}
		e.dev.waitLog(t, tk.ID, `decision signal naming "mallory" ignored`)
		mustDecide(t, e.dev, tk.ID, "approve", `{"comment":"recorded"}`)
		return tk.ID
	}},
	// The lease version hands the workspace on before the cleanup: a
	// failed task that waited for its shared workspace.
	{"v4-workspace-queue", func(t *testing.T, e recordEnv) string {
		first := e.dev.create(t, map[string]any{"name": "record v4 queue 1", "agent_id": "agent-record", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "slow"), "workspace": "rec-v4-queue", "step_seconds": 1}})
		// The second fails, so its end runs the cleanup (after the release).
		second := e.dev.create(t, map[string]any{"name": "record v4 queue 2", "agent_id": "agent-record", "runner_id": "local",
			"parameters": map[string]any{"files": fixture(t, "broken"), "workspace": "rec-v4-queue"}})
		waitEnd(t, e.dev, first.ID)
		waitEnd(t, e.dev, second.ID)
		return second.ID
	}},
}

// recordHostLost freezes (SIGSTOP, as in issue 27) the runner host that
// applies a task of a two-host runner: the apply's heartbeat times out, is
// not retried on the frozen host, and the block restarts on the other host,
// whose claim avoids the frozen one. The frozen host wakes once the task
// has ended.
func recordHostLost(t *testing.T, e recordEnv) string {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	r1 := startRunner(t, e.dev, "rec-fleet", filepath.Join(dir, "r1"), state)
	r2 := startRunner(t, e.dev, "rec-fleet", filepath.Join(dir, "r2"), state)
	hosts := map[string]*runnerProc{r1.hostID(t): r1, r2.hostID(t): r2}
	id := e.dev.create(t, map[string]any{"name": "record v4 host lost", "agent_id": "agent-record", "runner_id": "rec-fleet",
		"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 2}}).ID
	var victim *runnerProc
	var victimHost string
	e.dev.waitStatus(t, id, 2*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("ended before the freeze: %+v", s)
		}
		if s.Metadata.CurrentStep == "applying" && s.Metadata.ChangesDone >= 1 && hosts[s.Metadata.Host] != nil {
			victim, victimHost = hosts[s.Metadata.Host], s.Metadata.Host
			return true
		}
		return false
	})
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = victim.cmd.Process.Signal(syscall.SIGCONT) }()
	seen := e.dev.waitStatus(t, id, 4*time.Minute, terminal)
	if last := seen[len(seen)-1]; last.Status != "completed" || last.Metadata.Host == victimHost {
		t.Fatalf("after freezing host %s the task ended %+v\n%v", victimHost, last, e.dev.logs(t, id, "?level=warn,error"))
	}
	return id
}

func mustDecide(t *testing.T, p *devProc, id, verb, body string) {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	if r := decide(t, p, p.key, id, verb, b); r.code != 200 {
		t.Fatalf("%s: %d %s", verb, r.code, r.body)
	}
}

// TestRecordHistories records the histories of recordScenarios into the
// directory TERRATASK_RECORD_HISTORIES names (skipped without it):
//
//	TERRATASK_RECORD_HISTORIES=$PWD/workflows/testdata go test ./e2e -run TestRecordHistories
//
// The dev runs with the replay test's secret key
// (workflows/testdata/replay-secret.key), so payloads are encrypted as in
// production. A history whose file exists is never written again: old
// histories guard old workflow versions. Add a scenario for a new version
// and run the recorder; only the new files appear.
func TestRecordHistories(t *testing.T) {
	dir := os.Getenv("TERRATASK_RECORD_HISTORIES")
	if dir == "" {
		t.Skip("set TERRATASK_RECORD_HISTORIES=<dir> to record the replay tests' histories")
	}
	keys, err := secret.ReadKeysFile("../workflows/testdata/replay-secret.key")
	if err != nil || len(keys) != 1 {
		t.Fatalf("replay key: %v", err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "secret.key"), []byte(base64.StdEncoding.EncodeToString(keys[0])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only "local": a runner nobody serves stays unserved (no on-demand
	// runners), and the fleet scenarios' runner is their processes' alone.
	dev, err := startDev(dataDir, "raw-recorder-key-3e7a", "--webhook-allow", "127.0.0.1", "--runner", "local")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	c := dialDev(t, dev.temporal, dataDir)
	for _, sc := range recordScenarios {
		t.Run(sc.name, func(t *testing.T) {
			path := filepath.Join(dir, sc.name+".json")
			if _, err := os.Stat(path); err == nil {
				t.Skipf("%s exists: recorded histories are never re-recorded", path)
			}
			id := sc.run(t, recordEnv{dev: dev, client: c})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if openScenarios[sc.name] {
				t.Logf("%s is left open", id)
			} else if err := c.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
				t.Logf("task %s ended with %v", id, err)
			}
			writeHistory(t, c, id, path)
		})
	}
}

// writeHistory writes a workflow's history as `temporal workflow show
// --output json` does (protojson of a history).
func writeHistory(t *testing.T, c client.Client, id, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d events)", path, len(h.Events))
}

// approvingParent runs a task as a child workflow, hears that it waits
// for approval, and approves it by signal, as another Temporal
// application embedding terratask would.
func approvingParent(ctx workflow.Context, in task.Input) (task.Output, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: in.ID, TaskQueue: task.ControlPlaneTaskQueue})
	child := workflow.ExecuteChildWorkflow(cctx, task.WorkflowType, in)
	var req task.ApprovalRequest
	workflow.GetSignalChannel(ctx, task.SignalApprovalRequest).Receive(ctx, &req)
	d := task.Decision{Approve: true, By: "parent-workflow", At: workflow.Now(ctx),
		Comment: fmt.Sprintf("%d to add, %d to destroy", req.Plan.Add, req.Plan.Destroy)}
	// The decision's proof, made in an activity of a worker that holds
	// the secret key (README, "From Go"): the task ignores one without.
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	if err := workflow.ExecuteActivity(actx, "e2e.SignDecision", in.ID, d).Get(ctx, &d); err != nil {
		return task.Output{}, err
	}
	if err := child.SignalChildWorkflow(ctx, task.SignalDecision, d).Get(ctx, nil); err != nil {
		return task.Output{}, err
	}
	var out task.Output
	err := child.Get(ctx, &out)
	return out, err
}

// runApprovingParent starts approvingParent for a new task id on runner
// and waits for it; it returns the task's ID.
func runApprovingParent(t *testing.T, c client.Client, dataDir, runner, id string) string {
	t.Helper()
	queue := "parent-" + id
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(approvingParent, workflow.RegisterOptions{Name: "e2e.ApprovingParent"})
	box := devBox(t, dataDir)
	w.RegisterActivityWithOptions(func(_ context.Context, taskID string, d task.Decision) (task.Decision, error) {
		return box.Sign(taskID, d), nil
	}, activity.RegisterOptions{Name: "e2e.SignDecision"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	in := task.Input{
		ID: id, Name: "child", AgentID: "agent-parent", RunnerID: runner, Org: "default", CreatedAt: time.Now().UTC(),
		Params: task.Params{Files: fixture(t, "review"), Workspace: id, Approval: task.ApprovalRequired},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "parent-" + id, TaskQueue: queue}, "e2e.ApprovingParent", in)
	if err != nil {
		t.Fatal(err)
	}
	var out task.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("parent: %v", err)
	}
	if out.Status != task.StatusCompleted || out.Result.Output["endpoint"] != "web-1" {
		t.Fatalf("child output %+v", out)
	}
	return id
}

// TestParentApprovesChildBySignal: another Temporal application runs a
// task that waits for approval as a child workflow and approves it by
// signal; the API shows who approved.
func TestParentApprovesChildBySignal(t *testing.T) {
	t.Parallel()
	id := runApprovingParent(t, dialShared(t), shared.dataDir, "local", fmt.Sprintf("task-parent-approves-%d", time.Now().UnixNano()))
	tk := shared.get(t, id)
	if tk.Status != "completed" || tk.ApprovedBy != "parent-workflow" || tk.ApprovalComment != "2 to add, 0 to destroy" {
		t.Fatalf("API view of the approved child %+v", tk)
	}
}
