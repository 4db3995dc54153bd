package activities

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// A host that crashed mid-step left two work dirs: one of a task that has
// since ended elsewhere (with the spool of its interrupted attempt), one of
// a task that still runs. The janitor re-sends the crashed attempt's lines
// in their own stream, removes the ended task's dir and keeps the other,
// and removes a dead step's sandbox dir.
func TestJanitorSweepsWhatTasksLeft(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ended := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	running := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	for _, in := range []StepInput{ended, running} {
		in := in
		f.upTo(&in, false)
	}
	// The crashed attempt of the ended task: lines spooled, never sent.
	p, err := f.r.paths(ended.Task.ID)
	if err != nil {
		t.Fatal(err)
	}
	book := newLogBook(f.sink, ended.Task.ID, "run1/applying/attempt1", p.private, secret.NewMasker(task.Secrets{}), map[string]any{"step": "applying"}, f.r.logger())
	book.add(task.LevelInfo, componentTerraform, "aws_instance.web: Creating...", time.Now(), nil)
	book.add(task.LevelInfo, componentTerraform, "aws_instance.web: Still creating... [10s elapsed]", time.Now(), nil)
	book.spool.Close() // the crash: no flush, no close
	// A dead step's sandbox dir, from a minute ago.
	dead := filepath.Join(f.r.DataDir, "sandbox", "deadbeef")
	if err := os.MkdirAll(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}

	f.r.TaskEnded = func(_ context.Context, org, id string) (bool, error) {
		if org != "acme" {
			t.Errorf("TaskEnded asked for org %q", org)
		}
		return id == ended.Task.ID, nil
	}
	res, err := Sweep(context.Background(), f.r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resent != 2 || res.Removed != 1 || res.Sandboxes != 1 {
		t.Fatalf("sweep = %+v, want 2 lines re-sent, 1 work dir and 1 sandbox dir removed", res)
	}
	var stream []string
	for _, e := range f.sink.all(ended.Task.ID) {
		if e.Stream == "run1/applying/attempt1" {
			stream = append(stream, e.Message)
		}
	}
	if strings.Join(stream, "|") != "aws_instance.web: Creating...|aws_instance.web: Still creating... [10s elapsed]" {
		t.Fatalf("the crashed attempt's stream holds %q", stream)
	}
	if _, err := os.Stat(p.work); !os.IsNotExist(err) {
		t.Fatalf("the ended task's work dir is still there: %v", err)
	}
	rp, _ := f.r.paths(running.Task.ID)
	if _, err := os.Stat(rp.config); err != nil {
		t.Fatalf("the running task's work dir went: %v", err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("the dead step's sandbox dir is still there: %v", err)
	}
	// A second sweep finds nothing more, and doubles nothing.
	if res, err := Sweep(context.Background(), f.r); err != nil || res != (SweepResult{}) {
		t.Fatalf("second sweep = %+v, %v", res, err)
	}
	if n := len(f.sink.all(ended.Task.ID)); n == 0 {
		t.Fatal("no lines")
	}
}
