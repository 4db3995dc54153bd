package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/task"
)

// Only the API decides (issue 20): a client that reaches dev's Temporal
// (its certificate) but holds no terratask key forges decisions on a
// waiting plan, as a plain JSON payload and through the codec, by update and
// by signal, naming whom it likes. None moves the task; the API's own
// decision then applies the plan, recorded under the API key's name.
func TestForgedDecisionsDoNotDecide(t *testing.T) {
	t.Parallel()
	tk := shared.create(t, reviewBody(t, "forged", "forged-decisions", 1, map[string]any{"approval": "required"}))
	waitWaiting(t, shared, tk.ID)

	// A client with the codec (it can encrypt) and one without (plain
	// payloads, as a client without the secret key sends them).
	withCodec := dialShared(t)
	plain, err := client.Dial(client.Options{HostPort: shared.temporal, Namespace: "default",
		ConnectionOptions: devTemporalTLS(t, shared.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	forged := task.Decision{Approve: true, By: "mallory", At: time.Now().UTC(), Comment: "trust me", Proof: strings.Repeat("0", 64)}
	for name, c := range map[string]client.Client{"codec": withCodec, "plain": plain} {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: tk.ID, UpdateName: task.UpdateDecision,
			Args: []any{forged}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		// (The plain client cannot read the encrypted failure's message:
		// its type says it all.)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != "decision_without_proof" {
			t.Fatalf("%s: a forged decision update was not refused: %v", name, err)
		}
		if err := c.SignalWorkflow(ctx, tk.ID, "", task.SignalDecision, forged); err != nil {
			t.Fatalf("%s: signal: %v", name, err)
		}
	}
	// Both signals are refused, each with a warning.
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := shared.logs(t, tk.ID, "?level=warn")
		n := 0
		for _, l := range logs {
			if strings.Contains(l.Message, `decision signal naming "mallory" ignored`) {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the forged signals were not refused (%d warnings): %v", n, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := shared.get(t, tk.ID); got.Status != "waiting_approval" || got.ApprovedBy != "" {
		t.Fatalf("after forged decisions the task is %s, approved by %q", got.Status, got.ApprovedBy)
	}
	mustDecide(t, shared, tk.ID, "approve", `{"comment":"the real one"}`)
	waitEnd(t, shared, tk.ID)
	if got := shared.get(t, tk.ID); got.Status != "completed" || got.ApprovedBy == "mallory" || got.ApprovedBy == "" {
		t.Fatalf("after the API's approval: %s, approved by %q", got.Status, got.ApprovedBy)
	}
}

// waitLog waits until a log line of the task holds s.
func (p *devProc) waitLog(t testing.TB, id, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, l := range p.logs(t, id, "?limit=10000") {
			if strings.Contains(l.Message, s) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s never logged %q", id, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Only the API, or a holder of the org's key, starts a task (issue 20): a
// client that reaches dev's Temporal starts task workflows itself. One with
// a plain JSON input naming org default fails at once with
// configuration_error, before any runner is asked; one encrypted under org
// B's key but naming org default (a runner host of org B trying org A's
// runner and state) is refused when its input is decoded: it fails having
// scheduled nothing.
func TestForgedTasksDoNotRun(t *testing.T) {
	t.Parallel()
	plain, err := client.Dial(client.Options{HostPort: shared.temporal, Namespace: "default",
		ConnectionOptions: devTemporalTLS(t, shared.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	orgKey, err := master.OrgKey(devKey(t, shared.dataDir), "org-b")
	if err != nil {
		t.Fatal(err)
	}
	orgB, err := codec.NewOrg("org-b", orgKey)
	if err != nil {
		t.Fatal(err)
	}
	asOrgB, err := client.Dial(client.Options{HostPort: shared.temporal, Namespace: "default",
		ConnectionOptions: devTemporalTLS(t, shared.dataDir), DataConverter: orgB.DataConverter(), FailureConverter: orgB.FailureConverter()})
	if err != nil {
		t.Fatal(err)
	}
	defer asOrgB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	input := func(id string) task.Input {
		return task.Input{ID: id, Name: "forged", AgentID: "agent-forged", RunnerID: "local", Org: "default", CreatedAt: time.Now().UTC(),
			Params: task.Params{Files: fixture(t, "echo"), Workspace: id}}
	}
	scheduledClaims := func(id string) (claims int) {
		t.Helper()
		it := plain.GetWorkflowHistory(ctx, id, "", false, 0)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && task.QueueOrg(a.GetTaskQueue().GetName()) != "" {
				claims++
			}
		}
		return claims
	}

	// Plain: the task fails with configuration_error, no runner asked.
	plainID := fmt.Sprintf("task-forged-plain-%d", time.Now().UnixNano())
	run, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: plainID, TaskQueue: task.ControlPlaneTaskQueue}, task.WorkflowType, input(plainID))
	if err != nil {
		t.Fatal(err)
	}
	var appErr *temporal.ApplicationError
	if err := run.Get(ctx, nil); !errors.As(err, &appErr) || appErr.Type() != task.CodeConfig {
		t.Fatalf("a plain task input: %v", err)
	}
	if claims := scheduledClaims(plainID); claims != 0 {
		t.Fatalf("a plain task input reached a runner's queue %d times", claims)
	}

	// Org B's key, org default's task: the control plane refuses to decode
	// its input, so the workflow fails before it schedules anything.
	forgedID := fmt.Sprintf("task-forged-org-%d", time.Now().UnixNano())
	run, err = asOrgB.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: forgedID, TaskQueue: task.ControlPlaneTaskQueue}, task.WorkflowType, input(forgedID))
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err == nil {
		t.Fatal("org b's task input naming org default ran to completion")
	}
	if claims := scheduledClaims(forgedID); claims != 0 {
		t.Fatalf("org b's task input naming org default reached a runner's queue %d times", claims)
	}
	if got := shared.call(t, "GET", "/api/v1/tasks/"+forgedID, shared.key, nil); got.code != 404 {
		t.Fatalf("the forged task is in the API: %d %s", got.code, got.body)
	}
}
