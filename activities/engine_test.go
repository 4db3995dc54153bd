package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/internal/testbin"
	"github.com/terratask/terratask/task"
)

// TestOpenTofuRunsTheSameSteps runs a task with engine opentofu through every
// step with the real tofu: the -json stream feeds logs and progress,
// outputs come back redacted, a second task sees the state and destroys it,
// and a broken configuration fails with its diagnostics.
func TestOpenTofuRunsTheSameSteps(t *testing.T) {
	t.Parallel()
	tofu := testbin.Tofu(t)
	f := newFixture(t)
	f.r.TofuPaths = []string{tofu}

	in := f.newTask(task.Params{Engine: task.EngineOpenTofu, Module: "basic", Workspace: "tofu-ws",
		Variables: map[string]any{"name": "tofu"}},
		task.Secrets{SensitiveVariables: map[string]any{"token": "tok-tofu-9876"}})
	var inst InstallOutput
	f.mustExec("Install", in, &inst)
	if inst.TerraformPath != tofu || inst.Engine != task.EngineOpenTofu || "v"+inst.Version != testbin.TofuVersion {
		t.Fatalf("install = %+v", inst)
	}
	in.TerraformPath = inst.TerraformPath
	f.mustExec("Init", in, nil)
	var plan PlanOutput
	f.mustExec("Plan", in, &plan)
	if !plan.HasChanges || plan.PlannedChanges != 3 || plan.Add != 3 {
		t.Fatalf("plan = %+v", plan)
	}
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if applied.ChangesDone != 3 || applied.Outputs["greeting"] != "hello tofu" || applied.Outputs["token"] != SensitiveOutput {
		t.Fatalf("apply = %+v", applied)
	}
	f.mustExec("Cleanup", in, nil)
	var sawUsing, sawApply, sawPlanned bool
	for _, e := range f.sink.all(in.Task.ID) {
		md := e.Metadata
		sawUsing = sawUsing || strings.Contains(e.Message, "using tofu "+strings.TrimPrefix(testbin.TofuVersion, "v"))
		sawApply = sawApply || (md["type"] == "apply_complete" && md["resource"] == "terraform_data.first")
		sawPlanned = sawPlanned || (md["type"] == "planned_change" && md["resource"] == "terraform_data.second")
		if strings.Contains(e.Message, "tok-tofu-9876") {
			t.Errorf("secret in log: %q", e.Message)
		}
	}
	if !sawUsing || !sawApply || !sawPlanned {
		t.Errorf("using %v, apply_complete %v, planned_change %v:\n%s", sawUsing, sawApply, sawPlanned, f.sink.text(in.Task.ID))
	}

	in2 := f.newTask(task.Params{Engine: task.EngineOpenTofu, Module: "basic", Workspace: "tofu-ws", Action: task.ActionDestroy}, task.Secrets{})
	if p := f.upTo(&in2, true); p.Remove != 3 {
		t.Fatalf("destroy plan = %+v: the state was not kept", p)
	}
	var destroyed ApplyOutput
	f.mustExec("Apply", in2, &destroyed)
	if destroyed.ChangesDone != 3 {
		t.Fatalf("destroy = %+v", destroyed)
	}

	broken := f.newTask(task.Params{Engine: task.EngineOpenTofu, Files: map[string]string{
		"main.tf": "resource \"terraform_data\" \"a\" {\n  input = \n}\n",
	}}, task.Secrets{})
	f.mustExec("Install", broken, &inst)
	broken.TerraformPath = inst.TerraformPath
	appErr, te := taskErrorOf(t, f.exec(nil, "Init", broken, nil))
	if appErr.Type() != task.CodeConfig || !appErr.NonRetryable() || !strings.HasPrefix(te.Message, "tofu init failed: Invalid expression") {
		t.Fatalf("broken: %v (%s) %q", appErr, appErr.Type(), te.Message)
	}
	var found bool
	for _, d := range diagnosticsOf(t, te) {
		found = found || (d["summary"] == "Invalid expression" && d["file"] == "main.tf" && d["line"] == float64(2))
	}
	if !found {
		t.Errorf("diagnostics = %v", te.Details)
	}
}

// TestMissingEngineFailsAtOnce is not parallel: it empties PATH.
func TestMissingEngineFailsAtOnce(t *testing.T) {
	// Both fixtures before PATH is emptied: a fixture made after it finds no
	// terraform and skips (cmd/testgate caught the second half never
	// running).
	f, pinned := newFixture(t), newFixture(t)
	missing := filepath.Join(t.TempDir(), "no-tofu-here")
	f.r.TofuPaths = []string{missing}
	t.Setenv("PATH", t.TempDir())
	in := f.newTask(task.Params{Engine: task.EngineOpenTofu, Module: "basic"}, task.Secrets{})
	appErr, te := taskErrorOf(t, f.exec(nil, "Install", in, nil))
	if appErr.Type() != task.CodeEngineUnavailable || !appErr.NonRetryable() || te.Code != task.CodeEngineUnavailable {
		t.Fatalf("err = %v (%s)", appErr, appErr.Type())
	}
	for _, s := range []string{"--tofu-path " + missing, "PATH (1 directories): no tofu", "never downloaded"} {
		if !strings.Contains(te.Message, s) {
			t.Errorf("message %q lacks %q", te.Message, s)
		}
	}
	// A pinned version the host lacks names the versions it has.
	fake := filepath.Join(t.TempDir(), "tofu")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho '{\"terraform_version\":\"1.6.0\"}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pinned.r.TofuPaths = []string{fake}
	in = pinned.newTask(task.Params{Engine: task.EngineOpenTofu, TofuVersion: "1.7.2", Module: "basic"}, task.Secrets{})
	_, te = taskErrorOf(t, pinned.exec(nil, "Install", in, nil))
	if te.Code != task.CodeEngineUnavailable || !strings.Contains(te.Message, "version 1.7.2") || !strings.Contains(te.Message, "is 1.6.0") {
		t.Errorf("pinned: %+v", te)
	}
}

// TestScheduledRunIDsAreSafe runs a task whose ID is what Temporal gives a
// scheduled run (the action's ID and an RFC 3339 time, with ':'), on its
// own default workspace.
func TestScheduledRunIDsAreSafe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	in.Task.ID += "-2026-01-02T03:04:05Z"
	f.upTo(&in, true)
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if applied.ChangesDone != 3 {
		t.Fatalf("apply = %+v", applied)
	}
	name := task.SafeName(in.Task.ID)
	if strings.Contains(name, ":") || !strings.HasPrefix(name, strings.ReplaceAll(in.Task.ID, ":", "")) {
		t.Fatalf("SafeName(%s) = %s", in.Task.ID, name)
	}
	if _, err := os.Stat(filepath.Join(f.r.DataDir, "state", "acme", name, "terraform.tfstate")); err != nil {
		t.Fatalf("state of the default workspace: %v", err)
	}
	f.mustExec("Cleanup", in, nil)
}
