package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/codec/control"
	"github.com/terratask/terratask/internal/devtls"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/task"
)

// parentWorkflow runs a terratask task as a child workflow by its type name,
// as another Temporal application would.
func parentWorkflow(ctx workflow.Context, in task.Input) (task.Output, error) {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: in.ID,
		TaskQueue:  task.ControlPlaneTaskQueue,
	})
	var out task.Output
	err := workflow.ExecuteChildWorkflow(ctx, task.WorkflowType, in).Get(ctx, &out)
	return out, err
}

// dialShared dials the shared dev's Temporal as another application that
// shares terratask's secret key: its payloads are encrypted (package codec).
func dialShared(t *testing.T) client.Client {
	t.Helper()
	return dialDev(t, shared.temporal, shared.dataDir)
}

// devTemporalTLS is how a client reaches the embedded Temporal of the dev
// whose data dir is dataDir: mutual TLS with the certificates dev made.
func devTemporalTLS(t testing.TB, dataDir string) client.ConnectionOptions {
	t.Helper()
	conf, err := devtls.FilesIn(filepath.Join(dataDir, devtls.DirName)).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return client.ConnectionOptions{TLS: conf}
}

// devKey is the secret key of the dev whose data dir is dataDir.
func devKey(t *testing.T, dataDir string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.ParseKey(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// devBox is the secret box of that dev (what signs its decisions).
func devBox(t *testing.T, dataDir string) *master.Box {
	t.Helper()
	b, err := master.New(devKey(t, dataDir))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialDev dials the Temporal of a dev whose data dir is dataDir, with the
// codec of its secret key.
func dialDev(t *testing.T, hostPort, dataDir string) client.Client {
	t.Helper()
	// An application holding the secret key: the control plane's codec,
	// which reads the org-keyed payloads its child tasks send it.
	cdc, err := control.New(devKey(t, dataDir))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: hostPort, Namespace: "default",
		DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
		ConnectionOptions: devTemporalTLS(t, dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestTaskRunsAsChildWorkflow(t *testing.T) {
	t.Parallel()
	c := dialShared(t)
	queue := fmt.Sprintf("parent-%d", time.Now().UnixNano())
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(parentWorkflow, workflow.RegisterOptions{Name: "e2e.Parent"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	id := fmt.Sprintf("task-child%d", time.Now().UnixNano())
	in := task.Input{
		ID: id, Name: "child", AgentID: "agent-parent", RunnerID: "local", Org: "default",
		CreatedAt: time.Now().UTC(),
		Params:    task.Params{Files: fixture(t, "workspace"), Variables: map[string]any{"size": 2}, Workspace: id},
	}
	ctx := waitCtx(t, 2*time.Minute)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "parent-" + id, TaskQueue: queue}, "e2e.Parent", in)
	if err != nil {
		t.Fatal(err)
	}
	var out task.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("parent: %v", err)
	}
	if out.Status != task.StatusCompleted || fmt.Sprint(out.Result.Output["count"]) != "2" {
		t.Fatalf("child output %+v", out)
	}
	// A task started by another application is indexed and served by the API.
	tk := shared.get(t, id)
	if tk.Status != "completed" || tk.AgentID != "agent-parent" {
		t.Fatalf("API view of the child task %+v", tk)
	}

	// A failing child surfaces the task error to its parent.
	bad := in
	bad.ID = id + "-bad"
	bad.Params = task.Params{Files: fixture(t, "broken")}
	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "parent-" + bad.ID, TaskQueue: queue}, "e2e.Parent", bad)
	if err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, &out)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("failing child: want an ApplicationError, got %v", err)
	}
	var te task.Error
	if err := appErr.Details(&te); err != nil || te.Code == "" {
		t.Fatalf("task error details: %v %+v", err, te)
	}
}

func TestSearchAttributesAndWebUI(t *testing.T) {
	t.Parallel()
	tk := shared.create(t, map[string]any{
		"name": "visible", "agent_id": "agent-sa", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "workspace"), "action": "plan"},
	})
	shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
	c := dialShared(t)
	ctx := waitCtx(t, time.Minute)
	query := fmt.Sprintf("%s = 'completed' AND %s = 'agent-sa' AND %s = 'local' AND %s = 'default'",
		task.SearchAttrStatus, task.SearchAttrAgent, task.SearchAttrRunner, task.SearchAttrOrg)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err == nil {
			for _, e := range resp.Executions {
				if e.Execution.WorkflowId == tk.ID {
					if e.Type.Name != task.WorkflowType {
						t.Fatalf("workflow type %s", e.Type.Name)
					}
					goto ui
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("task %s not found by %q (last error %v)", tk.ID, query, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
ui:
	if shared.ui == "" {
		t.Fatal("no Web UI address in the banner")
	}
	for _, path := range []string{"/", "/api/v1/namespaces/default/workflows/" + tk.ID} {
		resp, err := http.Get(shared.ui + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Web UI %s: %d", path, resp.StatusCode)
		}
	}
}
