package activities

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// reviewTask is a task of the review fixture with its secrets.
func (f *fixture) reviewTask(mode task.Approval, size int, workspace string) StepInput {
	return f.newTask(task.Params{Module: "review", Workspace: workspace, Approval: mode,
		Variables: map[string]any{"size": size}},
		task.Secrets{SensitiveVariables: map[string]any{"password": "pw-Sup3rSecret", "api_key": "key-7f3a9c"}})
}

// execOn runs an activity of another runner host.
func (f *fixture) execOn(r *Runner, name string, in StepInput, result any) error {
	env := f.suite.NewTestActivityEnvironment()
	env.RegisterActivity(r)
	val, err := env.ExecuteActivity(name, in)
	if err == nil && result != nil {
		err = val.Get(result)
	}
	return err
}

func TestPlanIsKeptForReviewMasked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.reviewTask(task.ApprovalNone, 1, "review-masked")
	plan := f.upTo(&in, true)
	want := task.PlanSummary{Add: 2, Outputs: 2}
	if plan.Summary != want || len(plan.Digest) != 64 || plan.Sealed {
		t.Fatalf("plan = %+v, want summary %+v, a digest, not sealed (approval none)", plan, want)
	}
	// Nobody waits on it: the apply step shows it for review, beside its
	// own apply (review.go).
	if _, err := f.plans.GetPlan(context.Background(), "acme", in.Task.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the plan of approval none was shown before its apply: %v", err)
	}
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	stored, err := f.plans.GetPlan(context.Background(), "acme", in.Task.ID)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.sink.text(in.Task.ID))
	}
	if _, err := os.Stat(filepath.Join(f.r.dataDir(), "work", in.Task.ID, ".terratask", "review.tfplan")); !os.IsNotExist(err) {
		t.Fatalf("the review's link to the plan file is left: %v", err)
	}
	if _, err := f.plans.GetPlanFile(context.Background(), "acme", in.Task.ID); err == nil {
		t.Fatal("a plan that does not wait keeps no plan file")
	}
	for _, leak := range []string{"pw-Sup3rSecret", "key-7f3a9c"} {
		if strings.Contains(string(stored.JSON), leak) || strings.Contains(stored.Text, leak) {
			t.Fatalf("secret %q in the stored plan:\n%s\n%s", leak, stored.JSON, stored.Text)
		}
	}
	var doc api.Plan
	if err := json.Unmarshal(stored.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.TaskID != in.Task.ID || doc.Summary != want || doc.TerraformVersion == "" || doc.CreatedAt == "" {
		t.Fatalf("plan document header %+v", doc)
	}
	byAddr := map[string]api.ResourceChange{}
	for _, c := range doc.ResourceChanges {
		byAddr[c.Address] = c
	}
	db := byAddr["terraform_data.db"]
	after, _ := db.After.(map[string]any)
	input, _ := after["input"].(map[string]any)
	if db.Type != "terraform_data" || db.Name != "db" || db.Mode != "managed" || strings.Join(db.Actions, ",") != "create" ||
		input["password"] != api.SensitiveValue || input["key"] != "***" || after["output"] != api.UnknownValue || db.Before != nil {
		t.Fatalf("terraform_data.db change %+v", db)
	}
	if pw := doc.OutputChanges["password"]; !pw.Sensitive || pw.After != api.SensitiveValue {
		t.Fatalf("password output %+v", pw)
	}
	if ep := doc.OutputChanges["endpoint"]; ep.Sensitive || ep.After != api.UnknownValue || strings.Join(ep.Actions, ",") != "create" {
		t.Fatalf("endpoint output %+v", ep)
	}
	// No text of Terraform's: the plan route renders it from the JSON.
	text := api.PlanText(doc)
	if stored.Text != "" || !strings.Contains(text, "# terraform_data.db will be created") || !strings.Contains(text, "(sensitive)") ||
		!strings.Contains(text, "Plan: 2 to add, 0 to change, 0 to destroy.") || strings.Contains(text, "pw-Sup3rSecret") {
		t.Fatalf("text plan (stored %q):\n%s", stored.Text, text)
	}
	if stored.Digest != plan.Digest || stored.Summary != want {
		t.Fatalf("stored %+v", stored)
	}
	// Neither form reaches the task's log.
	if logs := f.sink.text(in.Task.ID); strings.Contains(logs, `"resource_changes"`) || strings.Contains(logs, "+ resource \"terraform_data\" \"db\"") {
		t.Fatalf("the shown plan is in the log:\n%s", logs)
	}
}

// TestApprovedPlanAppliesOnAnotherHost plans on host A under approval
// destructive (a replace: the plan waits, so its file is kept sealed), then
// applies the approved plan on host B, which never saw it.
func TestApprovedPlanAppliesOnAnotherHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.r.StateDir = filepath.Join(t.TempDir(), "shared-state")
	first := f.reviewTask(task.ApprovalNone, 1, "moving")
	f.upTo(&first, true)
	f.mustExec("Apply", first, nil)

	in := f.reviewTask(task.ApprovalDestructive, 2, "moving")
	plan := f.upTo(&in, true)
	if plan.Summary.Replace != 1 || plan.Summary.Change != 1 || !plan.Sealed {
		t.Fatalf("plan = %+v, want one replace, one update, sealed", plan)
	}
	pf, err := f.plans.GetPlanFile(context.Background(), "acme", in.Task.ID)
	if err != nil || pf.Digest != plan.Digest {
		t.Fatalf("plan file %v %v", pf.Digest, err)
	}
	local, err := os.ReadFile(filepath.Join(f.r.DataDir, "work", in.Task.ID, ".terratask", "plan.tfplan"))
	if err != nil || strings.Contains(string(pf.Data), string(local[:64])) {
		t.Fatalf("the stored plan file is not sealed (%v)", err)
	}

	// Host A is gone. Host B: same runner, store, key and state; its own
	// data dir. It installs and inits, then applies the approved plan.
	b := &Runner{Org: "acme", RunnerID: "test", HostID: "host-b", DataDir: t.TempDir(), ModulesDir: f.r.ModulesDir,
		SourceRoots: f.r.SourceRoots, Logs: f.sink, Plans: f.plans, Secrets: f.box, StateDir: f.r.StateDir,
		Logger: zaptest.NewLogger(t), DisableDownload: true}
	moved := in
	moved.Run = 2
	moved.SavedPlan = &SavedPlan{Digest: plan.Digest}
	var inst InstallOutput
	for _, step := range []string{"Install", "Init"} {
		var out any
		if step == "Install" {
			out = &inst
		}
		if err := f.execOn(b, step, moved, out); err != nil {
			t.Fatalf("%s on host B: %v\n%s", step, err, f.sink.text(in.Task.ID))
		}
		moved.TerraformPath = inst.TerraformPath
	}
	var applied ApplyOutput
	if err := f.execOn(b, "Apply", moved, &applied); err != nil {
		t.Fatalf("apply on host B: %v\n%s", err, f.sink.text(in.Task.ID))
	}
	if applied.ChangesDone != 2 || applied.Outputs["endpoint"] != "web-2" || applied.Outputs["password"] != SensitiveOutput {
		t.Fatalf("applied %+v", applied)
	}
	text := f.sink.text(in.Task.ID)
	if !strings.Contains(text, "applying the approved plan "+plan.Digest[:12]+", read from the store") || strings.Contains(text, "planning again") {
		t.Fatalf("host B did not apply the stored plan:\n%s", text)
	}

	// A wrong digest is never applied.
	bad := moved
	bad.SavedPlan = &SavedPlan{Digest: strings.Repeat("0", 64)}
	err = f.execOn(b, "Apply", bad, nil)
	if _, te := taskErrorOf(t, err); te.Code != task.CodeInternal || !strings.Contains(te.Message, "not the approved plan") {
		t.Fatalf("apply of another digest: %+v", te)
	}
}

// TestStalePlanIsNotApplied: a saved plan whose workspace's state changed
// since (here another task's apply, as a manual state push would) fails
// with plan_stale and changes nothing.
func TestStalePlanIsNotApplied(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.reviewTask(task.ApprovalNone, 1, "stale")
	f.upTo(&first, true)
	f.mustExec("Apply", first, nil)

	in := f.reviewTask(task.ApprovalRequired, 2, "stale")
	plan := f.upTo(&in, true)
	if !plan.Sealed {
		t.Fatalf("plan %+v", plan)
	}
	other := f.reviewTask(task.ApprovalNone, 3, "stale")
	f.upTo(&other, true)
	f.mustExec("Apply", other, nil)

	in.SavedPlan = &SavedPlan{Digest: plan.Digest}
	err := f.exec(nil, "Apply", in, nil)
	appErr, te := taskErrorOf(t, err)
	if te.Code != task.CodePlanStale || !appErr.NonRetryable() || !strings.Contains(te.Message, "state changed since it was planned") {
		t.Fatalf("apply of a stale plan: %v %+v\n%s", err, te, f.sink.text(in.Task.ID))
	}
	if strings.Contains(f.sink.text(in.Task.ID), "planning again") {
		t.Fatal("an approved plan was planned again")
	}
	state, err := os.ReadFile(filepath.Join(f.r.DataDir, "state", "acme", "stale", "terraform.tfstate"))
	if err != nil || !strings.Contains(string(state), "web-3") || strings.Contains(string(state), "web-2") {
		t.Fatalf("state after the refused apply (%v):\n%s", err, state)
	}
}
