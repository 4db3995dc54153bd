package activities

import (
	"context"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

// Two steps of one task never run at once in one runner process: the later
// waits for the earlier (an attempt given up while the runner was frozen,
// still stopping when the task's next attempt arrives); other tasks do not
// wait.
func TestOneStepOfATaskAtATime(t *testing.T) {
	r := &Runner{DataDir: t.TempDir()}
	ctx := context.Background()
	if err := r.enterTask(ctx, "task-a"); err != nil {
		t.Fatal(err)
	}
	earlier := &stepRun{r: r, in: StepInput{Task: task.Input{ID: "task-a"}}, counted: true}
	if err := r.enterTask(ctx, "task-b"); err != nil {
		t.Fatalf("another task waited: %v", err)
	}
	entered := make(chan error, 1)
	go func() { entered <- r.enterTask(ctx, "task-a") }()
	select {
	case err := <-entered:
		t.Fatalf("a second step of task-a entered while the first ran: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	earlier.leaveTask()
	earlier.leaveTask() // once only
	select {
	case err := <-entered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second step never entered after the first left")
	}
	// A step that waits gives up with its context.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := r.enterTask(cctx, "task-a"); err == nil {
		t.Fatal("entered a task held by another step")
	}
}
