package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// deliveries records what the delivery activity was asked, and fails the
// events named in failFor the given number of attempts.
type deliveries struct {
	mu       sync.Mutex
	calls    []string
	failFor  map[string]int
	attempts map[string]int
}

func (d *deliveries) deliver(ctx context.Context, in events.DeliverInput) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts[in.EventID]++
	d.calls = append(d.calls, fmt.Sprintf("%s@%d", in.EventID, activity.GetInfo(ctx).Attempt))
	if d.attempts[in.EventID] <= d.failFor[in.EventID] {
		return errors.New("receiver answered 500")
	}
	return nil
}

func runDelivery(t *testing.T, d *deliveries, signals func(env *testsuite.TestWorkflowEnvironment)) (*testsuite.TestWorkflowEnvironment, time.Duration) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Delivery, workflow.RegisterOptions{Name: events.WorkflowType})
	env.RegisterActivityWithOptions(d.deliver, activity.RegisterOptions{Name: events.ActivityDeliver})
	signals(env)
	start := env.Now()
	env.ExecuteWorkflow(events.WorkflowType, events.WorkflowInput{Org: "o", TaskID: "task-1", Target: "wh-1"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("the delivery workflow did not end")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	return env, env.Now().Sub(start)
}

// TestDeliveryInOrderOnceEach: events are delivered in the order they
// came, a repeated signal (a retried Record) delivers nothing twice, a
// failing event is retried with backoff before the next one goes, and the
// workflow ends once idle.
func TestDeliveryInOrderOnceEach(t *testing.T) {
	d := &deliveries{failFor: map[string]int{"e2": 3}, attempts: map[string]int{}}
	signal := func(env *testsuite.TestWorkflowEnvironment, at time.Duration, id string) {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(events.SignalEvent, events.Pending{EventID: id, Type: task.EventTaskStep})
		}, at)
	}
	_, took := runDelivery(t, d, func(env *testsuite.TestWorkflowEnvironment) {
		signal(env, 0, "e1")
		signal(env, 0, "e2")
		signal(env, 0, "e1") // a retried record
		signal(env, time.Second, "e3")
		signal(env, time.Minute, "e4")
		signal(env, time.Minute, "e3") // again, later
	})
	want := "[e1@1 e2@1 e2@2 e2@3 e2@4 e3@1 e4@1]"
	if got := fmt.Sprint(d.calls); got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	// It waited IdleFor after the last event, then ended.
	if took < time.Minute+events.IdleFor || took > time.Minute+events.IdleFor+time.Minute {
		t.Fatalf("ran %s", took)
	}
}

// TestDeliveryGivesUpAfterItsWindow: an event that never gets through is
// given up after events.RetryFor, and the next one is delivered.
func TestDeliveryGivesUpAfterItsWindow(t *testing.T) {
	d := &deliveries{failFor: map[string]int{"dead": 1 << 30}, attempts: map[string]int{}}
	_, took := runDelivery(t, d, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(events.SignalEvent, events.Pending{EventID: "dead"})
			env.SignalWorkflow(events.SignalEvent, events.Pending{EventID: "next"})
		}, 0)
	})
	if d.attempts["next"] != 1 || d.attempts["dead"] < 100 || d.attempts["dead"] > 200 {
		t.Fatalf("attempts %v", d.attempts)
	}
	if took < events.RetryFor {
		t.Fatalf("gave up after %s", took)
	}
}
