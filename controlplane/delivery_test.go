package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/task"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRecordStoresTheEventOnce: Record writes the transition, its line and
// its event, with the Task Object of that moment; a retried Record stores
// nothing twice.
func TestRecordStoresTheEventOnce(t *testing.T) {
	st := openSQLite(t)
	c := &Control{Store: st}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := task.Input{ID: "task-r", Name: "n", AgentID: "a", RunnerID: "local", Org: "o", CreatedAt: created, Metadata: map[string]any{"k": "v"}}
	rec := func(seq int64, status task.Status, ev task.EventType) Record {
		at := created.Add(time.Duration(seq) * time.Second)
		r := Record{Task: TaskRow(in, 4), Event: ev,
			Transition: store.Transition{ID: in.ID, Status: status, Progress: int(seq), UpdatedAt: at},
			Logs: []store.LogEntry{{TaskID: in.ID, Stream: "task", Seq: seq, Timestamp: at, Level: task.LevelInfo, Message: "m",
				Metadata: map[string]any{"component": "workflow", "status": string(status)}}}}
		if status.Terminal() {
			r.Transition.CompletedAt = &at
			r.Transition.Result = &task.Result{Output: map[string]any{"url": "https://x"}}
		}
		return r
	}
	for _, r := range []Record{rec(1, task.StatusPending, task.EventTaskCreated), rec(1, task.StatusPending, task.EventTaskCreated),
		rec(2, task.StatusRunning, task.EventTaskRunning), rec(3, task.StatusRunning, ""), rec(4, task.StatusCompleted, task.EventTaskCompleted),
		rec(4, task.StatusCompleted, task.EventTaskCompleted)} {
		if err := c.Record(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := st.ListEvents(context.Background(), store.EventQuery{Org: "o", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.ID+" "+string(e.Type))
	}
	if strings.Join(types, ", ") != "evt-task-r-1 task.created, evt-task-r-2 task.running, evt-task-r-4 task.completed" {
		t.Fatalf("events: %v", types)
	}
	var last api.Event
	if err := json.Unmarshal(evs[2].Body, &last); err != nil {
		t.Fatal(err)
	}
	if last.Task == nil || last.Task.Status != task.StatusCompleted || last.Task.Progress != 4 || last.Task.Result == nil ||
		last.Task.Result.Output["url"] != "https://x" || last.Task.Metadata["k"] != "v" || last.OccurredAt != "2026-01-01T00:00:04.000Z" {
		t.Fatalf("completed event: %s", evs[2].Body)
	}
	var first api.Event
	_ = json.Unmarshal(evs[0].Body, &first)
	if first.Task.Status != task.StatusPending || first.Task.Result != nil {
		t.Fatalf("created event: %s", evs[0].Body)
	}

	// Emit: once per (task, type, key), with the task as stored.
	for range 2 {
		id, err := c.Emit(context.Background(), EmitInput{Org: "o", TaskID: "task-r", Type: task.EventDriftDetected})
		if err != nil || id != "evt-task-r-drift.detected" {
			t.Fatalf("Emit: %q %v", id, err)
		}
	}
	if evs, _ = st.ListEvents(context.Background(), store.EventQuery{Org: "o", AfterSeq: evs[2].Seq, Limit: 10}); len(evs) != 1 || evs[0].Type != task.EventDriftDetected {
		t.Fatalf("after Emit: %+v", evs)
	}
	if _, err := c.Emit(context.Background(), EmitInput{Org: "o", TaskID: "task-r", Type: "nope"}); err == nil {
		t.Fatal("Emit of an unknown type")
	}
	if _, err := c.Emit(context.Background(), EmitInput{Org: "other", TaskID: "task-r", Type: task.EventDriftDetected}); err == nil {
		t.Fatal("Emit for a task of another org")
	}
}

// receiver is a real local HTTP receiver answering the statuses given, in
// turn, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	headers  []http.Header
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		var b bytes.Buffer
		_, _ = b.ReadFrom(req.Body)
		r.bodies = append(r.bodies, b.Bytes())
		r.headers = append(r.headers, req.Header.Clone())
		status := 200
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

// TestDeliverSignsRecordsAndSkips runs the delivery activity against a real
// receiver: a 500 is a retryable failure recorded with its attempt, a 2xx
// is recorded and the next call skips; the webhook's signature verifies;
// no secret reaches the delivery log or the error.
func TestDeliverSignsRecordsAndSkips(t *testing.T) {
	st := openSQLite(t)
	box, _ := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	rcv := newReceiver(t, 500)
	const hookSecret = "whsec_a-webhook-secret-of-test"
	sealed, _ := box.SealBytes([]byte(hookSecret), secret.WebhookSecretContext("o", "wh-1"))
	if err := st.CreateWebhook(context.Background(), store.Webhook{ID: "wh-1", Org: "o", URL: rcv.URL, SealedSecret: sealed, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	ev, _ := events.New("evt-task-d-3", task.EventTaskFailed, store.Task{ID: "task-d", Org: "o", Status: task.StatusFailed, CreatedAt: at, UpdatedAt: at}, at)
	if _, err := st.AppendEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	d := &Deliverer{Store: st, Secrets: box, Sender: loopbackSender(t, "--webhook-allow"), NotifySender: loopbackSender(t, "--notify-allow"),
		Observe: func(o, typ string) { outcomes = append(outcomes, o+"/"+typ) }}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(d.Deliver)
	in := events.DeliverInput{WorkflowInput: events.WorkflowInput{Org: "o", TaskID: "task-d", Target: "wh-1"}, EventID: ev.ID}
	_, err := env.ExecuteActivity(d.Deliver, in)
	if err == nil || !strings.Contains(err.Error(), "500") || strings.Contains(err.Error(), hookSecret) {
		t.Fatalf("first attempt: %v", err)
	}
	if _, err := env.ExecuteActivity(d.Deliver, in); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if _, err := env.ExecuteActivity(d.Deliver, in); err != nil { // delivered: skipped
		t.Fatalf("third call: %v", err)
	}
	if len(rcv.bodies) != 2 {
		t.Fatalf("receiver got %d requests", len(rcv.bodies))
	}
	for i, b := range rcv.bodies {
		h := rcv.headers[i]
		if err := events.Verify([]byte(hookSecret), h.Get(events.HeaderSignature), b, time.Now(), 0); err != nil ||
			h.Get(events.HeaderDelivery) != ev.ID || h.Get(events.HeaderEvent) != "task.failed" || !bytes.Equal(b, ev.Body) {
			t.Fatalf("request %d: %v %v %s", i, err, h, b)
		}
	}
	ds, err := st.ListDeliveries(context.Background(), store.DeliveryQuery{Org: "o", Target: "wh-1", Limit: 10})
	if err != nil || len(ds) != 2 || ds[1].StatusCode != 500 || ds[1].Succeeded || ds[0].StatusCode != 200 || !ds[0].Succeeded {
		t.Fatalf("delivery log: %v %+v", err, ds)
	}
	for _, x := range ds {
		if strings.Contains(x.Error, hookSecret) {
			t.Fatal("secret in the delivery log")
		}
	}
	if strings.Join(outcomes, " ") != "failed/task.failed delivered/task.failed skipped/" {
		t.Fatalf("outcomes %v", outcomes)
	}

	// Notify: signed with the org's signing secret, logged under "notify".
	nrcv := newReceiver(t)
	in.Target, in.URL = store.NotifyTarget, nrcv.URL+"/cb"
	if _, err := env.ExecuteActivity(d.Deliver, in); err != nil {
		t.Fatal(err)
	}
	if len(nrcv.bodies) != 1 || events.Verify([]byte(box.SigningSecret("o")), nrcv.headers[0].Get(events.HeaderSignature), nrcv.bodies[0], time.Now(), 0) != nil {
		t.Fatalf("notify: %d requests", len(nrcv.bodies))
	}
	// A deleted webhook's deliveries stop.
	if err := st.DeleteWebhook(context.Background(), "o", "wh-1"); err != nil {
		t.Fatal(err)
	}
	in.Target, in.URL, in.EventID = "wh-1", "", ev.ID
	if _, err := env.ExecuteActivity(d.Deliver, in); err != nil {
		t.Fatalf("deleted webhook: %v", err)
	}
}

// loopbackSender is a Sender whose guard lists 127.0.0.1 (the test
// receivers), as --webhook-allow 127.0.0.1 would.
func loopbackSender(t *testing.T, flag string) *events.Sender {
	t.Helper()
	allow, err := events.ParseAllowListFlag(flag, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return events.NewSender(0, &events.Guard{Allow: allow, Flag: flag})
}

// TestDeliverRefusesInternalTargets: at delivery time too, a webhook or
// notify URL on loopback is refused unless its allow list names it (the
// URL was stored before the list changed, or its name now resolves
// elsewhere): the receiver gets nothing, the attempt fails (retried) and
// the log says why.
func TestDeliverRefusesInternalTargets(t *testing.T) {
	st := openSQLite(t)
	box, _ := secret.NewBox(bytes.Repeat([]byte{3}, secret.KeySize))
	rcv := newReceiver(t)
	sealed, _ := box.SealBytes([]byte("whsec_a-webhook-secret-of-test"), secret.WebhookSecretContext("o", "wh-1"))
	if err := st.CreateWebhook(context.Background(), store.Webhook{ID: "wh-1", Org: "o", URL: rcv.URL, SealedSecret: sealed, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	ev, _ := events.New("evt-task-r-1", task.EventTaskFailed, store.Task{ID: "task-r", Org: "o", Status: task.StatusFailed, CreatedAt: at, UpdatedAt: at}, at)
	if _, err := st.AppendEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	// The defaults: no lists.
	d := &Deliverer{Store: st, Secrets: box, Sender: events.NewSender(0, &events.Guard{Flag: "--webhook-allow"}),
		NotifySender: events.NewSender(0, &events.Guard{Flag: "--notify-allow"})}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(d.Deliver)
	for target, flag := range map[string]string{"wh-1": "--webhook-allow", store.NotifyTarget: "--notify-allow"} {
		in := events.DeliverInput{WorkflowInput: events.WorkflowInput{Org: "o", TaskID: "task-r", Target: target}, EventID: ev.ID}
		if target == store.NotifyTarget {
			in.URL = rcv.URL + "/cb"
		}
		_, err := env.ExecuteActivity(d.Deliver, in)
		if err == nil || !strings.Contains(err.Error(), "refused: the host is a loopback address") || !strings.Contains(err.Error(), flag) {
			t.Fatalf("%s: %v", target, err)
		}
		ds, err := st.ListDeliveries(context.Background(), store.DeliveryQuery{Org: "o", Target: target, Limit: 10})
		if err != nil || len(ds) != 1 || ds[0].Succeeded || ds[0].StatusCode != 0 || !strings.Contains(ds[0].Error, "refused") {
			t.Fatalf("%s: delivery log: %v %+v", target, err, ds)
		}
	}
	if len(rcv.bodies) != 0 {
		t.Fatalf("the receiver got %d requests", len(rcv.bodies))
	}
}
