package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func (h *harness) testPlansRoundTrip(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org, other := h.name("org"), h.name("org")
	id := h.name("task")
	if _, err := s.GetPlan(ctx, org, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPlan before any: %v, want ErrNotFound", err)
	}
	before := time.Now().Add(-time.Second)
	p := store.Plan{TaskID: id, Org: org, Summary: task.PlanSummary{Add: 2, Change: 1, Destroy: 1, Replace: 1, Outputs: 3},
		JSON: []byte(`{"resource_changes":[{"address":"terraform_data.x","after":"(sensitive)"}]}`),
		Text: "Terraform will perform the following actions:\n  # terraform_data.x will be created\n", Digest: "ab12"}
	if err := s.PutPlan(ctx, p); err != nil {
		t.Fatalf("PutPlan: %v", err)
	}
	got, err := s.GetPlan(ctx, org, id)
	if err != nil {
		t.Fatalf("GetPlan: %v", err)
	}
	if got.TaskID != id || got.Org != org || got.Summary != p.Summary || !bytes.Equal(got.JSON, p.JSON) ||
		got.Text != p.Text || got.Digest != p.Digest || got.CreatedAt.Before(before) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("GetPlan = %+v, want %+v", got, p)
	}
	// Another org never sees it.
	if _, err := s.GetPlan(ctx, other, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPlan of another org: %v, want ErrNotFound", err)
	}
	// A new plan of the task replaces the old one.
	p2 := p
	p2.Summary, p2.JSON, p2.Text, p2.Digest = task.PlanSummary{Add: 1}, []byte(`{}`), "", "cd34"
	if err := s.PutPlan(ctx, p2); err != nil {
		t.Fatalf("PutPlan again: %v", err)
	}
	if got, err = s.GetPlan(ctx, org, id); err != nil || got.Summary != p2.Summary || string(got.JSON) != "{}" || got.Text != "" || got.Digest != "cd34" {
		t.Fatalf("GetPlan after replace = %+v, %v", got, err)
	}
	if err := s.PutPlan(ctx, store.Plan{Org: org}); err == nil {
		t.Fatal("PutPlan without a task ID succeeded")
	}
}

func (h *harness) testPlanFiles(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org := h.name("org")
	id := h.name("task")
	if _, err := s.GetPlanFile(ctx, org, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPlanFile before any: %v, want ErrNotFound", err)
	}
	// Not UTF-8, with NUL bytes: sealed data is arbitrary.
	data := append([]byte{0, 0xff, 0xfe}, bytes.Repeat([]byte{1, 0, 2}, 100_000)...)
	if err := s.PutPlanFile(ctx, store.PlanFile{TaskID: id, Org: org, Digest: "d1", Data: data}); err != nil {
		t.Fatalf("PutPlanFile: %v", err)
	}
	got, err := s.GetPlanFile(ctx, org, id)
	if err != nil || got.Digest != "d1" || !bytes.Equal(got.Data, data) || got.CreatedAt.IsZero() {
		t.Fatalf("GetPlanFile = %v (%d bytes), %v", got.Digest, len(got.Data), err)
	}
	if _, err := s.GetPlanFile(ctx, h.name("org"), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPlanFile of another org: %v", err)
	}
	if err := s.PutPlanFile(ctx, store.PlanFile{TaskID: id, Org: org, Digest: "d2", Data: []byte{}}); err != nil {
		t.Fatalf("PutPlanFile again: %v", err)
	}
	if got, err = s.GetPlanFile(ctx, org, id); err != nil || got.Digest != "d2" || got.Data == nil || len(got.Data) != 0 {
		t.Fatalf("GetPlanFile after replace = %+v, %v", got, err)
	}
	for range 2 { // removing twice is fine
		if err := s.DeletePlanFile(ctx, id); err != nil {
			t.Fatalf("DeletePlanFile: %v", err)
		}
	}
	if _, err := s.GetPlanFile(ctx, org, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPlanFile after delete: %v", err)
	}
}

func (h *harness) testApprovalTransitions(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	tk := pendingTask(h.name("task"), org, baseTime)
	mustCreate(t, s, tk)
	expectTask(t, s, tk) // no approval, no plan: nil

	expires := baseTime.Add(24 * time.Hour)
	plan := &task.PlanSummary{Add: 1, Destroy: 1, Replace: 1}
	want := tk
	want.Status, want.UpdatedAt = task.StatusWaitingApproval, baseTime.Add(time.Minute)
	want.Approval, want.Plan = &task.ApprovalState{ExpiresAt: ptr(us(expires))}, plan
	mustApply(t, s, store.Transition{ID: tk.ID, Status: want.Status, UpdatedAt: want.UpdatedAt,
		Approval: &task.ApprovalState{ExpiresAt: &expires}, Plan: plan})
	expectTask(t, s, want)

	// A transition without them keeps them.
	want.Status, want.UpdatedAt = task.StatusWaitingApproval, baseTime.Add(2*time.Minute)
	mustApply(t, s, store.Transition{ID: tk.ID, UpdatedAt: want.UpdatedAt})
	expectTask(t, s, want)

	// The decision replaces the approval state whole.
	at := baseTime.Add(3 * time.Minute)
	want.Status, want.UpdatedAt = task.StatusRunning, at
	want.Approval = &task.ApprovalState{ExpiresAt: ptr(us(expires)), ApprovedBy: "ops-b", ApprovedAt: ptr(us(at)), Comment: "looks right \u00e9\u4e16"}
	mustApply(t, s, store.Transition{ID: tk.ID, Status: want.Status, UpdatedAt: at, Approval: want.Approval})
	expectTask(t, s, want)

	// An older transition is ignored, approval and all.
	mustApply(t, s, store.Transition{ID: tk.ID, Status: task.StatusRejected, UpdatedAt: baseTime.Add(90 * time.Second),
		Approval: &task.ApprovalState{RejectedBy: "late"}})
	expectTask(t, s, want)

	// RecordTransition (the workflow's path) records them as ApplyTransition does.
	at = baseTime.Add(4 * time.Minute)
	want.Status, want.UpdatedAt, want.Plan = task.StatusRejected, at, &task.PlanSummary{Change: 2}
	want.Approval = &task.ApprovalState{ExpiresAt: ptr(us(expires)), RejectedBy: "ops-c", RejectedAt: ptr(us(at))}
	if _, err := s.RecordTransition(context.Background(), store.TransitionRecord{Task: tk, Transition: store.Transition{
		ID: tk.ID, Status: want.Status, UpdatedAt: at, Approval: want.Approval, Plan: want.Plan}}); err != nil {
		t.Fatalf("RecordTransition: %v", err)
	}
	expectTask(t, s, want)

	// Lists carry them too.
	tasks, _, err := s.ListTasks(context.Background(), store.TaskQuery{Org: org, Limit: 10})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ListTasks: %v %v", tasks, err)
	}
	if d := diffTask(tasks[0], want); len(d) > 0 {
		t.Fatalf("listed task differs: %v", d)
	}
}
