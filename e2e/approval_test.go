package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
)

// TestPlanReview runs the plan review scenarios against one `terratask dev`
// with a keys file of several roles, real terraform and real Temporal.
func TestPlanReview(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysPath, reviewKeys)
	dev, err := startDev(filepath.Join(dir, "data"), "raw-review-dev-admin-0f0f", "--api-keys-file", keysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	t.Run("group", func(t *testing.T) {
		t.Run("ApproveAppliesTheReviewedPlan", func(t *testing.T) { t.Parallel(); testApprove(t, dev) })
		t.Run("DestructiveAndReject", func(t *testing.T) { t.Parallel(); testDestructiveReject(t, dev) })
		t.Run("ApprovalTimeout", func(t *testing.T) { t.Parallel(); testApprovalTimeout(t, dev) })
		t.Run("CancelWhileWaiting", func(t *testing.T) { t.Parallel(); testCancelWhileWaiting(t, dev) })
		t.Run("WorkspaceQueueHoldsBehind", func(t *testing.T) { t.Parallel(); testQueueBehindWaiting(t, dev) })
		t.Run("StatePushMakesPlanStale", func(t *testing.T) { t.Parallel(); testPlanStale(t, dev) })
		t.Run("ScheduledTaskFourEyes", func(t *testing.T) { t.Parallel(); testScheduledFourEyes(t, dev) })
	})
}

func testApprove(t *testing.T, dev *devProc) {
	secret := "pw-e2e-S3cret-rv-approve"
	tk := createAs(t, dev, reviewKey("op-one"), reviewBody(t, "approve", "rv-approve", 1, map[string]any{"approval": "required"}))
	st := waitWaiting(t, dev, tk.ID)
	if st.Metadata.WaitingFor != "approval" || st.Metadata.Plan == nil || st.Metadata.Plan.Add != 2 || st.Metadata.Plan.Outputs != 2 {
		t.Fatalf("status while waiting %+v", st)
	}
	expires, err := time.Parse(time.RFC3339, st.Metadata.ApprovalExpiresAt)
	if err != nil || time.Until(expires) < 23*time.Hour || time.Until(expires) > 25*time.Hour {
		t.Fatalf("approval_expires_at %q: the server's default is 24h", st.Metadata.ApprovalExpiresAt)
	}
	// The plan, in both forms, for any key of the org; no secret in either.
	r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", reviewKey("viewer-r"), nil)
	if r.code != 200 || strings.Contains(string(r.body), secret) || !strings.Contains(string(r.body), `"(sensitive)"`) {
		t.Fatalf("plan JSON: %d %s", r.code, r.body)
	}
	plan := r.object(t)
	fieldSet(t, "plan", plan, []string{"task_id", "created_at", "terraform_version", "summary", "resource_changes", "output_changes", "resource_drift"})
	changes := plan["resource_changes"].([]any)
	if len(changes) != 2 || plan["task_id"] != tk.ID {
		t.Fatalf("plan %s", r.body)
	}
	first := changes[0].(map[string]any)
	fieldSet(t, "resource change", first, []string{"address", "module_address", "mode", "type", "name", "provider_name", "actions", "before", "after"},
		"action_reason", "index", "importing")
	for _, text := range []reply{
		dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", reviewKey("op-two"), nil, "Accept", "text/plain"),
		dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan?format=text", reviewKey("op-two"), nil),
	} {
		if text.code != 200 || !strings.HasPrefix(text.header.Get("Content-Type"), "text/plain") || strings.Contains(string(text.body), secret) ||
			!strings.Contains(string(text.body), "# terraform_data.db will be created") || !strings.Contains(string(text.body), "(sensitive)") {
			t.Fatalf("plan text: %d %v\n%s", text.code, text.header, text.body)
		}
	}
	if got := dev.get(t, tk.ID); got.Status != "waiting_approval" || got.ApprovedBy != "" {
		t.Fatalf("task while waiting %+v", got)
	}
	// The Temporal Web UI shows what the workflow waits for (its current
	// details, from the SDK's metadata query).
	// Through the payload codec: the dev encrypts every payload.
	c := dialDev(t, dev.temporal, dev.dataDir)
	v, err := c.QueryWorkflow(waitCtx(t, time.Minute), tk.ID, "", "__temporal_workflow_metadata")
	var md sdkpb.WorkflowMetadata
	if err != nil || v.Get(&md) != nil || !strings.Contains(md.GetCurrentDetails(), "Waiting for approval") ||
		!strings.Contains(md.GetCurrentDetails(), "2 to add") || !strings.Contains(md.GetCurrentDetails(), "other than `op-one`") {
		t.Fatalf("current details %q (%v)", md.GetCurrentDetails(), err)
	}

	// Who may not.
	for _, c := range []struct {
		key  string
		code int
		want string
	}{
		{"op-one", 403, "four eyes"},
		{"bot-r", 403, "bound to agent"},
		{"viewer-r", 403, "may not do this"},
		{"other-admin", 404, "Task not found"},
	} {
		r := decide(t, dev, reviewKey(c.key), tk.ID, "approve", nil)
		if code, msg, _ := r.errorOf(t); r.code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%s approves: %d %s %s", c.key, r.code, code, msg)
		}
	}

	// Two approvers at once: one wins.
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	for i, key := range []string{"op-two", "admin-r"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = decide(t, dev, reviewKey(key), tk.ID, "approve", []byte(`{"comment":"reviewed by `+key+`"}`))
		}()
	}
	wg.Wait()
	winner := ""
	for i, r := range replies {
		key := []string{"op-two", "admin-r"}[i]
		switch r.code {
		case 200:
			if winner != "" {
				t.Fatalf("both approvals won: %s", r.body)
			}
			winner = key
			var won Task
			_ = json.Unmarshal(r.body, &won)
			if won.ApprovedBy != key || won.ApprovedAt == nil || won.ApprovalComment != "reviewed by "+key || won.Status == "waiting_approval" {
				t.Fatalf("winner's reply %s", r.body)
			}
		case 409:
			_, _, details := r.errorOf(t)
			if details["status"] == "waiting_approval" || details["status"] == nil {
				t.Fatalf("loser's 409 %s", r.body)
			}
		default:
			t.Fatalf("approve by %s: %d %s", key, r.code, r.body)
		}
	}
	if winner == "" {
		t.Fatalf("no approval won: %d %s / %d %s", replies[0].code, replies[0].body, replies[1].code, replies[1].body)
	}
	seen := waitEnd(t, dev, tk.ID)
	if last := seen[len(seen)-1]; last.Status != "completed" || last.Metadata.ApprovedBy != winner {
		t.Fatalf("after approval %+v\n%s", last, logText(t, dev, tk.ID))
	}
	got := dev.get(t, tk.ID)
	if got.ApprovedBy != winner || got.Result.Output["endpoint"] != "web-1" || got.Result.Output["password"] != "(sensitive)" {
		t.Fatalf("task after apply %+v %+v", got, got.Result)
	}
	logs := logText(t, dev, tk.ID)
	if !strings.Contains(logs, "the plan was approved by "+winner) || !strings.Contains(logs, "saved on this host") || strings.Contains(logs, secret) {
		t.Fatalf("logs:\n%s", logs)
	}
	if r := decide(t, dev, reviewKey("admin-r"), tk.ID, "reject", nil); r.code != 409 {
		t.Fatalf("reject after the end: %d %s", r.code, r.body)
	}
}

func testDestructiveReject(t *testing.T, dev *devProc) {
	admin := reviewKey("admin-r")
	// Create-only under destructive: applies at once.
	first := createAs(t, dev, admin, reviewBody(t, "create", "rv-destr", 1, map[string]any{"approval": "destructive"}))
	for _, s := range waitEnd(t, dev, first.ID) {
		if s.Status == "waiting_approval" {
			t.Fatal("a create-only plan waited under approval destructive")
		}
	}
	if got := dev.get(t, first.ID); got.Status != "completed" || !strings.Contains(logText(t, dev, first.ID), "needs no approval") {
		t.Fatalf("create-only task %+v\n%s", got, logText(t, dev, first.ID))
	}
	// No change under required: completes without waiting.
	same := createAs(t, dev, admin, reviewBody(t, "same", "rv-destr", 1, map[string]any{"approval": "required"}))
	for _, s := range waitEnd(t, dev, same.ID) {
		if s.Status == "waiting_approval" {
			t.Fatal("a plan without changes waited")
		}
	}
	// A replace waits; its creator (an operator) may reject it.
	tk := createAs(t, dev, reviewKey("op-one"), reviewBody(t, "replace", "rv-destr", 2, map[string]any{"approval": "destructive"}))
	st := waitWaiting(t, dev, tk.ID)
	if st.Metadata.Plan.Replace != 1 || st.Metadata.Plan.Destroy != 1 || st.Metadata.Plan.Change != 1 {
		t.Fatalf("plan of the replace %+v", st.Metadata.Plan)
	}
	r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", admin, nil)
	if !strings.Contains(string(r.body), `"actions":["delete","create"]`) && !strings.Contains(string(r.body), `"actions":["create","delete"]`) {
		t.Fatalf("plan of the replace: %s", r.body)
	}
	r = decide(t, dev, reviewKey("op-one"), tk.ID, "reject", []byte(`{"comment":"not during business hours"}`))
	if r.code != 200 {
		t.Fatalf("reject: %d %s", r.code, r.body)
	}
	var rejected Task
	_ = json.Unmarshal(r.body, &rejected)
	if rejected.Status != "rejected" || rejected.RejectedBy != "op-one" || rejected.RejectedAt == nil ||
		rejected.ApprovalComment != "not during business hours" || rejected.Result.Error.Code != "rejected" {
		t.Fatalf("reply of the reject %s", r.body)
	}
	if s := waitEnd(t, dev, tk.ID); s[len(s)-1].Status != "rejected" || s[len(s)-1].Metadata.RejectedBy != "op-one" {
		t.Fatalf("status after reject %+v", s[len(s)-1])
	}
	// Nothing was applied: the state still has size 1.
	state := dev.call(t, http.MethodGet, "/api/v1/state/default/rv-destr", admin, nil)
	if state.code != 200 || !strings.Contains(string(state.body), "web-1") || strings.Contains(string(state.body), "web-2") {
		t.Fatalf("state after the reject: %d %s", state.code, state.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/plan", admin, nil); r.code != 200 {
		t.Fatalf("the rejected plan stays readable: %d", r.code)
	}
	if !strings.Contains(logText(t, dev, tk.ID), "the plan was rejected by op-one (comment: not during business hours)") {
		t.Fatalf("logs:\n%s", logText(t, dev, tk.ID))
	}
}

func testApprovalTimeout(t *testing.T, dev *devProc) {
	tk := createAs(t, dev, reviewKey("admin-r"), reviewBody(t, "timeout", "rv-timeout", 1,
		map[string]any{"approval": "required", "approval_timeout": "3s"}))
	seen := waitEnd(t, dev, tk.ID)
	waited := false
	for _, s := range seen {
		waited = waited || s.Status == "waiting_approval"
	}
	got := dev.get(t, tk.ID)
	if got.Status != "rejected" || got.Result.Error == nil || got.Result.Error.Code != "approval_timeout" || got.RejectedBy != "" {
		t.Fatalf("after the approval timeout %+v %+v (waited: %v)", got, got.Result, waited)
	}
	if r := decide(t, dev, reviewKey("admin-r"), tk.ID, "approve", nil); r.code != 409 {
		t.Fatalf("approve after the timeout: %d %s", r.code, r.body)
	}
}

func testCancelWhileWaiting(t *testing.T, dev *devProc) {
	tk := createAs(t, dev, reviewKey("op-one"), reviewBody(t, "cancel", "rv-cancel", 1, map[string]any{"approval": "required"}))
	waitWaiting(t, dev, tk.ID)
	r := dev.call(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", reviewKey("op-one"), nil)
	if r.code != 200 || r.object(t)["status"] != "cancelled" {
		t.Fatalf("cancel of a waiting task: %d %s", r.code, r.body)
	}
	if got := dev.get(t, tk.ID); got.Status != "cancelled" || got.CancelledBy != "op-one" || got.Result.Error.Code != "cancelled" {
		t.Fatalf("after cancel %+v", got)
	}
	// The work dir (configuration, saved plan) is removed.
	work := filepath.Join(dev.dataDir, "runners", "local", "work", tk.ID)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(work); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("work dir %s still there after the cancel", work)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logText(t, dev, tk.ID), "while the plan waits for approval") {
		t.Fatalf("logs:\n%s", logText(t, dev, tk.ID))
	}
}

func testQueueBehindWaiting(t *testing.T, dev *devProc) {
	admin := reviewKey("admin-r")
	waiting := createAs(t, dev, reviewKey("op-one"), reviewBody(t, "first", "rv-queue", 1, map[string]any{"approval": "required"}))
	waitWaiting(t, dev, waiting.ID)
	later := createAs(t, dev, admin, reviewBody(t, "later", "rv-queue", 2, nil))
	// The later task stays pending behind the waiting one.
	until := time.Now().Add(8 * time.Second)
	for time.Now().Before(until) {
		var st Status
		dev.request(t, http.MethodGet, "/api/v1/tasks/"+later.ID+"/status", nil, &st)
		if st.Status != "pending" || st.Metadata.WaitingFor != "workspace rv-queue" {
			t.Fatalf("the later task did not wait behind the waiting one: %+v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := decide(t, dev, reviewKey("op-two"), waiting.ID, "approve", nil); r.code != 200 {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	if s := waitEnd(t, dev, waiting.ID); s[len(s)-1].Status != "completed" {
		t.Fatalf("first %+v", s[len(s)-1])
	}
	if s := waitEnd(t, dev, later.ID); s[len(s)-1].Status != "completed" {
		t.Fatalf("later %+v", s[len(s)-1])
	}
	first, second := dev.get(t, waiting.ID), dev.get(t, later.ID)
	done, _ := time.Parse(time.RFC3339, *first.CompletedAt)
	started, _ := time.Parse(time.RFC3339, *second.StartedAt)
	if started.Before(done) || second.Result.Output["endpoint"] != "web-2" {
		t.Fatalf("the later task started %s, before the first ended %s (%+v)", started, done, second.Result)
	}
}

func testPlanStale(t *testing.T, dev *devProc) {
	admin := reviewKey("admin-r")
	base := createAs(t, dev, admin, reviewBody(t, "base", "rv-stale", 1, nil))
	if s := waitEnd(t, dev, base.ID); s[len(s)-1].Status != "completed" {
		t.Fatalf("base %+v", s[len(s)-1])
	}
	tk := createAs(t, dev, reviewKey("op-one"), reviewBody(t, "stale", "rv-stale", 2, map[string]any{"approval": "required"}))
	waitWaiting(t, dev, tk.ID)

	// An admin pushes a state between the plan and its approval.
	r := dev.call(t, http.MethodGet, "/api/v1/state/default/rv-stale", admin, nil)
	if r.code != 200 {
		t.Fatalf("state: %d %s", r.code, r.body)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	serial, _ := doc["serial"].(float64)
	doc["serial"] = serial + 1
	pushed, _ := json.Marshal(doc)
	if r := dev.call(t, http.MethodPost, "/api/v1/state/default/rv-stale", admin, pushed); r.code != 200 {
		t.Fatalf("push: %d %s", r.code, r.body)
	}

	if r := decide(t, dev, reviewKey("op-two"), tk.ID, "approve", nil); r.code != 200 {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	waitEnd(t, dev, tk.ID)
	got := dev.get(t, tk.ID)
	if got.Status != "failed" || got.Result.Error == nil || got.Result.Error.Code != "plan_stale" || got.ApprovedBy != "op-two" {
		t.Fatalf("after approving a stale plan %+v %+v\n%s", got, got.Result, logText(t, dev, tk.ID))
	}
	after := dev.call(t, http.MethodGet, "/api/v1/state/default/rv-stale", admin, nil)
	var now map[string]any
	_ = json.Unmarshal(after.body, &now)
	if now["serial"] != serial+1 || strings.Contains(string(after.body), "web-2") {
		t.Fatalf("the stale plan changed the state: serial %v, want %v\n%s", now["serial"], serial+1, after.body)
	}
	if strings.Contains(logText(t, dev, tk.ID), "planning again") {
		t.Fatal("an approved plan was planned again")
	}
}

// testScheduledFourEyes: a task a schedule starts waits for an approver who
// wrote none of its template. op-one creates the schedule, op-two's PATCH
// changes its template; neither may approve the task the schedule starts
// (whose creator is op-two), op-three may.
func testScheduledFourEyes(t *testing.T, dev *devProc) {
	template := reviewBody(t, "scheduled", "rv-sched", 1, map[string]any{"approval": "required"})
	body, _ := json.Marshal(map[string]any{"name": "four eyes", "cron": "@yearly", "paused": true, "template": template})
	r := dev.call(t, http.MethodPost, "/api/v1/schedules", reviewKey("op-one"), body)
	if r.code != 200 {
		t.Fatalf("create schedule: %d %s", r.code, r.body)
	}
	id := r.object(t)["id"].(string)
	defer dev.call(t, http.MethodDelete, "/api/v1/schedules/"+id, reviewKey("admin-r"), nil)
	body, _ = json.Marshal(map[string]any{"template": reviewBody(t, "scheduled", "rv-sched", 2, map[string]any{"approval": "required"})})
	if r := dev.call(t, http.MethodPatch, "/api/v1/schedules/"+id, reviewKey("op-two"), body); r.code != 200 {
		t.Fatalf("patch the template: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodPost, "/api/v1/schedules/"+id+"/trigger", reviewKey("op-one"), nil); r.code != 200 {
		t.Fatalf("trigger: %d %s", r.code, r.body)
	}
	var started []Task
	waitFor(t, time.Minute, "the triggered task", func() bool {
		dev.request(t, http.MethodGet, "/api/v1/tasks?schedule="+id, nil, &started)
		return len(started) == 1
	})
	waitWaiting(t, dev, started[0].ID)
	for _, key := range []string{"op-one", "op-two"} {
		r := decide(t, dev, reviewKey(key), started[0].ID, "approve", nil)
		if _, msg, _ := r.errorOf(t); r.code != 403 || !strings.Contains(msg, "four eyes") {
			t.Fatalf("%s, an author of the template, approves: %d %s", key, r.code, r.body)
		}
	}
	if r := decide(t, dev, reviewKey("op-three"), started[0].ID, "approve", nil); r.code != 200 {
		t.Fatalf("op-three approves: %d %s", r.code, r.body)
	}
	if s := waitEnd(t, dev, started[0].ID); s[len(s)-1].Status != "completed" || s[len(s)-1].Metadata.ApprovedBy != "op-three" {
		t.Fatalf("after approval %+v\n%s", s[len(s)-1], logText(t, dev, started[0].ID))
	}
}

// TestApprovalSurvivesRestart SIGKILLs `terratask dev` while a task waits
// for approval, starts it again, and approves: the saved plan is applied.
func TestApprovalSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const key = "raw-approval-restart-9e1d"
	p, err := startDev(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	tk := p.create(t, reviewBody(t, "restart", "rv-restart", 1, map[string]any{"approval": "required"}))
	waitWaiting(t, p, tk.ID)
	p.kill()

	p2, err := startDev(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p2.stop(); err != nil {
			t.Error(err)
		}
	}()
	// Still waiting after the restart; an admin may approve its own task.
	if st := waitWaiting(t, p2, tk.ID); st.Metadata.Plan == nil || st.Metadata.Plan.Add != 2 {
		t.Fatalf("after restart %+v", st)
	}
	if r := decide(t, p2, key, tk.ID, "approve", []byte(`{"comment":"after the restart"}`)); r.code != 200 {
		t.Fatalf("approve: %d %s", r.code, r.body)
	}
	seen := waitEnd(t, p2, tk.ID)
	got := p2.get(t, tk.ID)
	if seen[len(seen)-1].Status != "completed" || got.ApprovedBy != "dev-admin" || got.Result.Output["endpoint"] != "web-1" {
		t.Fatalf("after approval %+v %+v\n%s", got, got.Result, logText(t, p2, tk.ID))
	}
}
