package activities

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/task"
)

// claimUntilTaken runs the runner's Claim as the task workflow does, with
// up to maxAttempts attempts a second or so apart, in a workflow test
// environment (the activity test environment runs attempt 1 only). It
// returns the attempts that ran and the claim, or the last attempt's error.
func claimUntilTaken(t *testing.T, f *fixture, in StepInput, maxAttempts int32) (attempts []int32, out ClaimOutput, err error) {
	t.Helper()
	env := f.suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(f.r)
	var mu sync.Mutex
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, info.Attempt)
	})
	claim := func(ctx workflow.Context, in StepInput) (ClaimOutput, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			HeartbeatTimeout:    10 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
				MaximumInterval: 5 * time.Second, MaximumAttempts: maxAttempts},
		})
		var out ClaimOutput
		err := workflow.ExecuteActivity(ctx, "Claim", in).Get(ctx, &out)
		return out, err
	}
	env.RegisterWorkflowWithOptions(claim, workflow.RegisterOptions{Name: "claimUntilTaken"})
	env.ExecuteWorkflow("claimUntilTaken", in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("the claim workflow did not complete")
	}
	if err = env.GetWorkflowError(); err == nil {
		err = env.GetWorkflowResult(&out)
	}
	return attempts, out, err
}

// TestClaimOnAvoidedHostGivesWayThreeTimes: a host the task declared lost
// refuses the claim's first three attempts, retryably and without a word in
// the task's logs, and takes the task at the fourth (a runner whose only
// host came back still runs it).
func TestClaimOnAvoidedHostGivesWayThreeTimes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	in.Run = 2
	in.AvoidHosts = []string{"host-z", f.r.HostID}

	// Three attempts: each refused; the last one's error ends the claim.
	attempts, _, err := claimUntilTaken(t, f, in, 3)
	if want := []int32{1, 2, 3}; !slices.Equal(attempts, want) {
		t.Fatalf("attempts %v, want %v", attempts, want)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeHostAvoided || appErr.NonRetryable() {
		t.Fatalf("claim: %v, want a retryable %s error", err, ErrTypeHostAvoided)
	}
	if want := "host host-a was declared lost for this task: leaving the claim to another host of runner test"; appErr.Message() != want {
		t.Errorf("message %q, want %q", appErr.Message(), want)
	}
	if entries := f.sink.all(in.Task.ID); len(entries) != 0 {
		t.Fatalf("a refused claim wrote to the task's logs:\n%s", f.sink.text(in.Task.ID))
	}

	// As the workflow retries it: refused three times, taken at the fourth.
	attempts, out, err := claimUntilTaken(t, f, in, 10)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if want := []int32{1, 2, 3, 4}; !slices.Equal(attempts, want) {
		t.Fatalf("attempts %v, want %v", attempts, want)
	}
	if out.Host != "host-a" || out.HostQueue != task.HostTaskQueue("acme", "test", "host-a") {
		t.Errorf("claim = %+v", out)
	}
	// Only the accepted attempt logged.
	entries := f.sink.all(in.Task.ID)
	if len(entries) == 0 {
		t.Fatal("the accepted claim logged nothing")
	}
	for _, e := range entries {
		if e.Stream != "run2/claim/attempt4" {
			t.Errorf("log entry of stream %s (%s): only the accepted attempt 4 logs", e.Stream, e.Message)
		}
	}
}

// TestClaimAvoidingOtherHostsTakesAtOnce: a host the task does not avoid
// takes the claim at its first attempt.
func TestClaimAvoidingOtherHostsTakesAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	in.AvoidHosts = []string{"host-z"}
	attempts, out, err := claimUntilTaken(t, f, in, 10)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if !slices.Equal(attempts, []int32{1}) || out.Host != "host-a" {
		t.Fatalf("attempts %v, claim %+v", attempts, out)
	}
}
