package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func (h *harness) testCreateGet(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	full := store.Task{
		ID:          h.name("task"),
		Org:         org,
		Name:        "deploy web",
		Description: "a description with unicode: é ✓ and 'quotes' \"too\"",
		AgentID:     "agent-7",
		RunnerID:    "runner-eu",
		Status:      task.StatusRunning,
		Progress:    42,
		Metadata: map[string]any{
			"team":   "platform",
			"count":  3,
			"ratio":  0.5,
			"flag":   true,
			"none":   nil,
			"nested": map[string]any{"list": []any{1, "two", false}, "obj": map[string]any{"k": "v"}},
		},
		CurrentStep:    task.StepPlanning,
		StepsCompleted: 2,
		TotalSteps:     4,
		Result: &task.Result{
			Output: map[string]any{"url": "https://example.test"},
		},
		CreatedAt:   baseTime.In(zone),
		UpdatedAt:   baseTime.Add(90 * time.Second),
		StartedAt:   ptr(baseTime.Add(time.Second)),
		CompletedAt: ptr(baseTime.Add(2 * time.Second)),
		CancelledAt: ptr(baseTime.Add(3 * time.Second)),
		CancelledBy: "ops-key",
		ScheduleID:  "sched-abc",
	}
	minimal := store.Task{
		ID:        h.name("task"),
		Org:       org,
		Status:    task.StatusPending,
		CreatedAt: baseTime,
		UpdatedAt: baseTime,
	}
	mustCreate(t, s, full, minimal)
	expectTask(t, s, full)
	expectTask(t, s, minimal)

	got := mustGet(t, s, org, full.ID)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	if want := baseTime.Truncate(time.Microsecond); !got.CreatedAt.Equal(want) {
		t.Errorf("CreatedAt = %v, want %v (microsecond precision)", got.CreatedAt, want)
	}
	if got := mustGet(t, s, org, minimal.ID); got.StartedAt != nil || got.CompletedAt != nil ||
		got.CancelledAt != nil || got.Result != nil {
		t.Errorf("minimal task: unset optional fields came back set: %+v", got)
	}
}

func (h *harness) testGetNotFound(t *testing.T) {
	s := h.open(t)
	org, other := h.name("org"), h.name("org")
	tk := pendingTask(h.name("task"), org, baseTime)
	mustCreate(t, s, tk)

	for _, c := range []struct{ name, org, id string }{
		{"missing", org, h.name("task")},
		{"other org", other, tk.ID},
		{"empty org", "", tk.ID},
	} {
		_, err := s.GetTask(t.Context(), c.org, c.id)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: GetTask(%q, %q) error = %v, want store.ErrNotFound", c.name, c.org, c.id, err)
		}
	}
}

func (h *harness) testCreateIdempotent(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	first := pendingTask(h.name("task"), org, baseTime)
	first.Name = "first"
	mustCreate(t, s, first)

	again := first
	again.Name = "second"
	again.Status = task.StatusRunning
	again.CreatedAt = baseTime.Add(time.Hour)
	again.UpdatedAt = again.CreatedAt
	if err := s.CreateTask(t.Context(), again); err != nil {
		t.Fatalf("CreateTask with an existing ID = %v, want nil", err)
	}
	mustCreate(t, s, first)
	expectTask(t, s, first)

	// Limit 1: a full page, so the total is counted, not inferred.
	list, total, err := s.ListTasks(t.Context(), store.TaskQuery{Org: org, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || len(list) != 1 {
		t.Errorf("after three creates of one ID: %d tasks listed, total %d; want 1, 1", len(list), total)
	}
}

func (h *harness) testCreateDefaults(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	tk := store.Task{ID: h.name("task"), Org: org, CreatedAt: baseTime}
	mustCreate(t, s, tk)
	got := mustGet(t, s, org, tk.ID)
	if got.Status != task.StatusPending {
		t.Errorf("empty status stored as %q, want pending", got.Status)
	}
	if !got.UpdatedAt.Equal(us(baseTime)) {
		t.Errorf("zero UpdatedAt stored as %v, want CreatedAt %v", got.UpdatedAt, us(baseTime))
	}
	if err := s.CreateTask(t.Context(), store.Task{Org: org, CreatedAt: baseTime}); err == nil {
		t.Error("CreateTask without an ID succeeded")
	}
	if err := s.CreateTask(t.Context(), store.Task{ID: h.name("task"), CreatedAt: baseTime}); err == nil {
		t.Error("CreateTask without an org succeeded")
	}
}

func (h *harness) testTransitionApplies(t *testing.T) {
	s := h.open(t)
	want := pendingTask(h.name("task"), h.name("org"), baseTime)
	mustCreate(t, s, want)

	t1 := baseTime.Add(time.Second)
	mustApply(t, s, store.Transition{
		ID: want.ID, Status: task.StatusRunning, Progress: 10, CurrentStep: task.StepInstalling,
		StepsCompleted: 0, TotalSteps: 4, UpdatedAt: t1, StartedAt: &t1,
	})
	want.Status, want.Progress, want.CurrentStep, want.TotalSteps = task.StatusRunning, 10, task.StepInstalling, 4
	want.UpdatedAt, want.StartedAt = t1, &t1
	expectTask(t, s, want)

	// Same UpdatedAt: applied.
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusRunning, Progress: 20,
		CurrentStep: task.StepInitializing, StepsCompleted: 1, TotalSteps: 4, UpdatedAt: t1})
	want.Progress, want.CurrentStep, want.StepsCompleted = 20, task.StepInitializing, 1
	expectTask(t, s, want)

	// Steps completed never decrease; a zero total keeps the stored one.
	t2 := t1.Add(time.Second)
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusRunning, Progress: 20,
		CurrentStep: task.StepPlanning, StepsCompleted: 0, UpdatedAt: t2})
	want.CurrentStep, want.UpdatedAt = task.StepPlanning, t2
	expectTask(t, s, want)

	// An empty status keeps the stored one.
	t3 := t2.Add(time.Second)
	mustApply(t, s, store.Transition{ID: want.ID, Progress: 30, StepsCompleted: 2, TotalSteps: 4, UpdatedAt: t3})
	want.Progress, want.StepsCompleted, want.UpdatedAt = 30, 2, t3
	expectTask(t, s, want)

	// Cancelling then cancelled.
	t4 := t3.Add(time.Second)
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusCancelling, Progress: 30,
		StepsCompleted: 2, TotalSteps: 4, UpdatedAt: t4, CancelledAt: &t4, CancelledBy: "alice"})
	want.Status, want.UpdatedAt, want.CancelledAt, want.CancelledBy = task.StatusCancelling, t4, &t4, "alice"
	expectTask(t, s, want)
	t5 := t4.Add(time.Second)
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusCancelled, Progress: 30,
		StepsCompleted: 2, TotalSteps: 4, UpdatedAt: t5, CompletedAt: &t5})
	want.Status, want.UpdatedAt, want.CompletedAt = task.StatusCancelled, t5, &t5
	expectTask(t, s, want)
}

func (h *harness) testTransitionStale(t *testing.T) {
	s := h.open(t)
	want := pendingTask(h.name("task"), h.name("org"), baseTime)
	mustCreate(t, s, want)
	t2 := baseTime.Add(2 * time.Second)
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusRunning, Progress: 10,
		CurrentStep: task.StepPlanning, StepsCompleted: 2, TotalSteps: 4, UpdatedAt: t2, StartedAt: &t2})
	want.Status, want.Progress, want.CurrentStep, want.StepsCompleted, want.TotalSteps = task.StatusRunning, 10, task.StepPlanning, 2, 4
	want.UpdatedAt, want.StartedAt = t2, &t2
	expectTask(t, s, want)

	// A retried older transition, even one that would finish the task, is
	// ignored entirely.
	t1 := baseTime.Add(time.Second)
	stale := store.Transition{ID: want.ID, Status: task.StatusFailed, Progress: 90,
		CurrentStep: task.StepApplying, StepsCompleted: 3, TotalSteps: 5, UpdatedAt: t1,
		StartedAt: &t1, CompletedAt: &t1, CancelledAt: &t1, CancelledBy: "bob",
		Result: &task.Result{Error: &task.Error{Code: task.CodeInternal, Message: "late"}}}
	if err := s.ApplyTransition(t.Context(), stale); err != nil {
		t.Fatalf("stale transition: %v, want nil", err)
	}
	// Older by less than a millisecond, too.
	stale.UpdatedAt = t2.Add(-time.Millisecond)
	if err := s.ApplyTransition(t.Context(), stale); err != nil {
		t.Fatalf("stale transition: %v, want nil", err)
	}
	expectTask(t, s, want)
}

func (h *harness) testTransitionProgress(t *testing.T) {
	s := h.open(t)
	want := pendingTask(h.name("task"), h.name("org"), baseTime)
	mustCreate(t, s, want)
	at := baseTime
	for i, p := range []int{10, 50, 30, 0, 55, 54} {
		at = at.Add(time.Second)
		mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusRunning, Progress: p, UpdatedAt: at})
		want.Progress = max(want.Progress, p)
		want.Status, want.UpdatedAt = task.StatusRunning, at
		got := mustGet(t, s, want.Org, want.ID)
		if got.Progress != want.Progress {
			t.Errorf("after transition %d (progress %d): progress = %d, want %d", i, p, got.Progress, want.Progress)
		}
		if !got.UpdatedAt.Equal(us(at)) {
			t.Errorf("after transition %d: updated_at = %v, want %v", i, got.UpdatedAt, us(at))
		}
	}
	expectTask(t, s, want)
}

func (h *harness) testTransitionNilFields(t *testing.T) {
	s := h.open(t)
	want := pendingTask(h.name("task"), h.name("org"), baseTime)
	mustCreate(t, s, want)
	t1 := baseTime.Add(time.Second)
	res := &task.Result{Output: map[string]any{"id": "i-123"}}
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusCancelling, Progress: 60,
		CurrentStep: task.StepApplying, StepsCompleted: 3, TotalSteps: 4, UpdatedAt: t1,
		StartedAt: &t1, CompletedAt: &t1, CancelledAt: &t1, CancelledBy: "carol", Result: res})
	want.Status, want.Progress, want.CurrentStep, want.StepsCompleted, want.TotalSteps = task.StatusCancelling, 60, task.StepApplying, 3, 4
	want.UpdatedAt, want.StartedAt, want.CompletedAt, want.CancelledAt, want.CancelledBy, want.Result = t1, &t1, &t1, &t1, "carol", res
	expectTask(t, s, want)

	// Only UpdatedAt and Status set: everything else is kept.
	t2 := t1.Add(time.Second)
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusCancelling, UpdatedAt: t2})
	want.UpdatedAt = t2
	expectTask(t, s, want)

	// Set pointers replace the stored values.
	t3 := t2.Add(time.Second)
	res2 := &task.Result{Output: map[string]any{"id": "i-456"}}
	mustApply(t, s, store.Transition{ID: want.ID, Status: task.StatusCancelled, UpdatedAt: t3,
		CompletedAt: &t3, CancelledAt: &t3, CancelledBy: "dave", Result: res2})
	want.Status, want.UpdatedAt, want.CompletedAt, want.CancelledAt, want.CancelledBy, want.Result = task.StatusCancelled, t3, &t3, &t3, "dave", res2
	expectTask(t, s, want)
}

func (h *harness) testTransitionTerminal(t *testing.T) {
	for _, terminal := range []task.Status{task.StatusCompleted, task.StatusFailed, task.StatusCancelled} {
		t.Run(string(terminal), func(t *testing.T) {
			s := h.open(t)
			want := pendingTask(h.name("task"), h.name("org"), baseTime)
			mustCreate(t, s, want)
			t1 := baseTime.Add(time.Second)
			progress := 70
			if terminal == task.StatusCompleted {
				progress = 100
			}
			mustApply(t, s, store.Transition{ID: want.ID, Status: terminal, Progress: progress,
				StepsCompleted: 4, TotalSteps: 4, CurrentStep: task.StepApplying, UpdatedAt: t1, CompletedAt: &t1})
			want.Status, want.Progress, want.StepsCompleted, want.TotalSteps = terminal, progress, 4, 4
			want.CurrentStep, want.UpdatedAt, want.CompletedAt = task.StepApplying, t1, &t1
			expectTask(t, s, want)

			at := t1
			for _, st := range []task.Status{task.StatusPending, task.StatusRunning, task.StatusCancelling} {
				at = at.Add(time.Second)
				mustApply(t, s, store.Transition{ID: want.ID, Status: st, Progress: 10, UpdatedAt: at})
				got := mustGet(t, s, want.Org, want.ID)
				if got.Status != terminal {
					t.Errorf("%s after a later %s transition: status %q, want %q", terminal, st, got.Status, terminal)
				}
				if got.Progress != progress {
					t.Errorf("%s after a later %s transition: progress %d, want %d", terminal, st, got.Progress, progress)
				}
			}
		})
	}
}

func (h *harness) testTransitionResult(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	ok := pendingTask(h.name("task"), org, baseTime)
	failed := pendingTask(h.name("task"), org, baseTime)
	mustCreate(t, s, ok, failed)

	t1 := baseTime.Add(time.Minute)
	okResult := &task.Result{Output: map[string]any{
		"url":      "https://app.example.test",
		"replicas": 3,
		"ratio":    1.25,
		"enabled":  true,
		"secret":   "(sensitive)",
		"nothing":  nil,
		"tags":     []any{"a", "b"},
		"nested": map[string]any{
			"list": []any{1, "two", map[string]any{"three": 3.0}, []any{}},
			"obj":  map[string]any{"deep": map[string]any{"deeper": "yes"}},
		},
	}}
	mustApply(t, s, store.Transition{ID: ok.ID, Status: task.StatusCompleted, Progress: 100,
		StepsCompleted: 4, TotalSteps: 4, CurrentStep: task.StepApplying, UpdatedAt: t1, CompletedAt: &t1, Result: okResult})
	ok.Status, ok.Progress, ok.StepsCompleted, ok.TotalSteps, ok.CurrentStep = task.StatusCompleted, 100, 4, 4, task.StepApplying
	ok.UpdatedAt, ok.CompletedAt, ok.Result = t1, &t1, okResult
	expectTask(t, s, ok)

	failResult := &task.Result{Error: &task.Error{
		Code:    task.CodeTerraform,
		Message: "terraform apply failed: 2 errors",
		Details: map[string]any{
			"diagnostics": []task.Diagnostic{
				{Severity: "error", Summary: "Invalid value", Detail: "must be \"a\" or \"b\"",
					Address: "aws_s3_bucket.logs", File: "main.tf", Line: 12},
				{Severity: "error", Summary: "Quota exceeded", Address: `module.net.aws_vpc.this["eu"]`},
			},
			"exit_code": 1,
		},
	}}
	mustApply(t, s, store.Transition{ID: failed.ID, Status: task.StatusFailed, Progress: 80,
		StepsCompleted: 3, TotalSteps: 4, CurrentStep: task.StepApplying, UpdatedAt: t1, CompletedAt: &t1, Result: failResult})
	failed.Status, failed.Progress, failed.StepsCompleted, failed.TotalSteps, failed.CurrentStep = task.StatusFailed, 80, 3, 4, task.StepApplying
	failed.UpdatedAt, failed.CompletedAt, failed.Result = t1, &t1, failResult
	expectTask(t, s, failed)

	got := mustGet(t, s, org, failed.ID)
	if got.Result == nil || got.Result.Error == nil {
		t.Fatalf("failed task's result error missing: %s", jsonString(got.Result))
	}
	if got.Result.Error.Code != task.CodeTerraform || got.Result.Output != nil {
		t.Errorf("failed task's result = %s", jsonString(got.Result))
	}
	got = mustGet(t, s, org, ok.ID)
	if got.Result == nil || got.Result.Error != nil || got.Result.Output["url"] != "https://app.example.test" {
		t.Errorf("completed task's result = %s", jsonString(got.Result))
	}
}

func (h *harness) testTransitionNotFound(t *testing.T) {
	s := h.open(t)
	err := s.ApplyTransition(t.Context(), store.Transition{ID: h.name("task"), Status: task.StatusRunning, UpdatedAt: baseTime})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("transition of a missing task: %v, want store.ErrNotFound", err)
	}
}
