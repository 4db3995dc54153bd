package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/internal/temporalutil"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/taskstart"
)

const heartbeatMethod = "/temporal.api.workflowservice.v1.WorkflowService/RecordActivityTaskHeartbeat"

// fleet is a real Temporal server (temporaltest), the control-plane worker
// and one runner host wired as in production (NewControlPlane, NewRunner),
// on a real SQLite store, running real Terraform. Its client's connection
// can slow down every heartbeat RPC, as a frontend under load does.
type fleet struct {
	t  *testing.T
	c  client.Client
	st store.Store
	// heartbeatDelay holds each RecordActivityTaskHeartbeat call this long
	// (nanoseconds) before it goes to the server; heartbeats counts them.
	heartbeatDelay atomic.Int64
	heartbeats     atomic.Int64
	// heartbeatsFailUntil (unix nanoseconds) fails every heartbeat RPC
	// until then, as a stream reset does.
	heartbeatsFailUntil atomic.Int64
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform is not on PATH")
	}
	f := &fleet{t: t}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	f.c = ts.NewClientWithOptions(client.Options{ConnectionOptions: client.ConnectionOptions{
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(f.slowHeartbeats)},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := temporalutil.EnsureSearchAttributes(ctx, f.c, ts.GetDefaultNamespace(), task.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	if err := temporalutil.WaitForSearchAttributes(ctx, f.c, ts.GetDefaultNamespace(), task.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st

	log := zaptest.NewLogger(t)
	r := &activities.Runner{
		Org: "default", RunnerID: "hb", HostID: "host-1", DataDir: t.TempDir(),
		Logs: st, Plans: st, Logger: log.Named("runner"),
		HeartbeatEvery: 200 * time.Millisecond, DisableDownload: true,
	}
	ws := append([]sdkworker.Worker{NewControlPlane(f.c, st, ControlOptions{Logger: log})}, NewRunner(f.c, r, sdkworker.Options{})...)
	if err := StartAll(ws); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopAll(ws) })
	return f
}

func (f *fleet) slowHeartbeats(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == heartbeatMethod {
		f.heartbeats.Add(1)
		if time.Now().UnixNano() < f.heartbeatsFailUntil.Load() {
			return status.Error(codes.Canceled, "stream terminated by RST_STREAM with error code: CANCEL")
		}
		if d := time.Duration(f.heartbeatDelay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// slowApply is a configuration whose apply takes a few seconds: several
// heartbeat ticks.
func slowApply(marker string) map[string]string {
	return map[string]string{"main.tf": fmt.Sprintf(`
resource "terraform_data" "slow" {
  count = 2
  provisioner "local-exec" {
    command = "echo %[1]s-${count.index} starting; sleep 2.%[1]s; echo %[1]s-${count.index} done"
  }
}

output "n" {
  value = length(terraform_data.slow)
}
`, marker)}
}

func (f *fleet) start(ctx context.Context, id string, p task.Params) client.WorkflowRun {
	f.t.Helper()
	in := task.Input{ID: id, Name: id, AgentID: "agent-hb", RunnerID: "hb", Org: "default",
		CreatedAt: time.Now().UTC(), Params: p}
	in.Params.Workspace = id
	run, err := f.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: task.ControlPlaneTaskQueue,
		TypedSearchAttributes: taskstart.SearchAttributes(in),
	}, task.WorkflowType, in)
	if err != nil {
		f.t.Fatal(err)
	}
	return run
}

// logs returns a task's stored log lines, oldest first.
func (f *fleet) logs(id string) string {
	es, err := f.st.ListLogs(context.Background(), store.LogQuery{TaskID: id, Limit: 10000})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %s#%d [%s] %s\n", e.Timestamp.Format("15:04:05.000"), e.Stream, e.Seq, e.Level, e.Message)
	}
	return b.String()
}

// activityEvents counts the history events of the task's Apply activity by
// type.
func (f *fleet) activityEvents(ctx context.Context, id string) map[enumspb.EventType]int {
	f.t.Helper()
	out := map[enumspb.EventType]int{}
	applies := map[int64]bool{}
	it := f.c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			f.t.Fatal(err)
		}
		switch a := ev.GetActivityTaskScheduledEventAttributes(); {
		case a != nil && a.GetActivityType().GetName() == activities.NameApply:
			applies[ev.GetEventId()] = true
		case ev.GetActivityTaskCompletedEventAttributes() != nil && applies[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()],
			ev.GetActivityTaskFailedEventAttributes() != nil && applies[ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()],
			ev.GetActivityTaskCanceledEventAttributes() != nil && applies[ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()],
			ev.GetActivityTaskTimedOutEventAttributes() != nil && applies[ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()]:
			out[ev.GetEventType()]++
		}
	}
	return out
}

// TestSlowHeartbeatsDoNotFailATask reproduces e2e/fleet's failure under
// load: every heartbeat RPC takes 1.5 s (the frontend is slow, nothing is
// lost), then, in a second task, every heartbeat RPC fails for 4 s (a reset
// stream) while Terraform applies. Both tasks must complete on their first
// attempts: a heartbeat that is late or lost is no reason to stop
// Terraform, let alone to fail the task.
func TestSlowHeartbeatsDoNotFailATask(t *testing.T) {
	f := newFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	check := func(id string, run client.WorkflowRun) {
		t.Helper()
		var out task.Output
		if err := run.Get(ctx, &out); err != nil || out.Status != task.StatusCompleted {
			t.Fatalf("task %s ended %v (%v), want completed\n%s", id, out.Status, err, f.logs(id))
		}
		if fmt.Sprint(out.Result.Output["n"]) != "2" {
			t.Fatalf("outputs %v", out.Result.Output)
		}
		logs := f.logs(id)
		if strings.Contains(logs, "/attempt2") || strings.Contains(logs, "execution halted") {
			t.Fatalf("a step of %s was interrupted or retried:\n%s", id, logs)
		}
		if ev := f.activityEvents(ctx, id); ev[enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED] != 1 || len(ev) != 1 {
			t.Fatalf("apply activity events of %s: %v, want one completion", id, ev)
		}
	}

	f.heartbeatDelay.Store(int64(1500 * time.Millisecond))
	id := "task-slow-heartbeats"
	check(id, f.start(ctx, id, task.Params{Files: slowApply("41"), Parallelism: 1}))
	if n := f.heartbeats.Load(); n < 3 {
		t.Fatalf("only %d heartbeat RPCs: the apply did not heartbeat through the slow frontend", n)
	}

	f.heartbeatDelay.Store(0)
	id = "task-failing-heartbeats"
	run := f.start(ctx, id, task.Params{Files: slowApply("43"), Parallelism: 1})
	for len(procsWith("sleep 2.43")) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the provisioner never started\n%s", f.logs(id))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.heartbeatsFailUntil.Store(time.Now().Add(4 * time.Second).UnixNano())
	check(id, run)
}

// TestCancelStopsTerraformWithinAHeartbeat cancels a task mid-apply while
// heartbeats are slow: the cancel still reaches Terraform as SIGINT at the
// next heartbeat, nothing it started survives, and the activity ends as
// cancelled (not failed) in the history.
func TestCancelStopsTerraformWithinAHeartbeat(t *testing.T) {
	f := newFleet(t)
	f.heartbeatDelay.Store(int64(300 * time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	marker := fmt.Sprintf("60.%05d", time.Now().UnixNano()%100000)
	id := "task-cancel-heartbeats"
	cfg := map[string]string{"main.tf": fmt.Sprintf(`
resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "echo starting; sleep %s; echo finished"
  }
}
`, marker)}
	run := f.start(ctx, id, task.Params{Files: cfg})
	sleep := "sleep " + marker
	for len(procsWith(sleep)) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the provisioner never started\n%s", f.logs(id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancelled := time.Now()
	if err := f.c.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	err := run.Get(ctx, nil)
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("task ended with %v, want cancelled\n%s", err, f.logs(id))
	}
	t.Logf("task cancelled %s after the request", time.Since(cancelled).Round(10*time.Millisecond))
	if left := procsWith(marker); len(left) > 0 {
		t.Fatalf("processes survived the cancel: %v", left)
	}
	if logs := f.logs(id); !strings.Contains(logs, "Interrupt received") {
		t.Fatalf("Terraform was not interrupted:\n%s", logs)
	}
	if ev := f.activityEvents(ctx, id); ev[enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED] != 1 {
		t.Fatalf("apply activity events %v, want it cancelled", ev)
	}
}

// procsWith returns the live processes whose command line contains s.
func procsWith(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, s) {
			out = append(out, e.Name()+": "+cmd)
		}
	}
	return out
}
