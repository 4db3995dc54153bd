package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/terratask/terratask/internal/testbin"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// recordingTerraform writes a `terraform` that logs each subcommand to a
// file before running the real one, and returns it and the log.
func recordingTerraform(t *testing.T, real string) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "terraform"), filepath.Join(dir, "commands.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %q\nexec %q \"$@\"\n", log, real)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

// commandsSince returns the subcommands logged after the first skip.
func commandsSince(t *testing.T, log string, skip int) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if skip > len(lines) {
		return nil
	}
	return lines[skip:]
}

// sorted joins a sorted copy of ss (the review's show runs beside the
// apply, so the two start in either order).
func sorted(ss []string) string {
	c := append([]string(nil), ss...)
	sort.Strings(c)
	return strings.Join(c, " ")
}

// TestTerraformProcessesPerTask: a task runs version once per binary (not
// per task), no `output` after an apply (its outputs message serves), and the
// next task of an identical configuration runs no init (its working
// directory comes from the first one's) and still sees the state.
func TestTerraformProcessesPerTask(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The recording script logs to a file of the test's, which a sandboxed
	// engine cannot reach: the counts are the same either way.
	f.r.Sandbox = nil
	bin, log := recordingTerraform(t, f.tfPath)
	task1 := func() StepInput {
		in := f.newTask(task.Params{Module: "basic", Workspace: "procs", Variables: map[string]any{"name": "procs"}},
			task.Secrets{SensitiveVariables: map[string]any{"token": "tok-procs-1"}})
		in.TerraformPath = bin
		return in
	}

	in := task1()
	f.mustExec("Init", in, nil)
	f.mustExec("Plan", in, nil)
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	first := commandsSince(t, log, 0)
	if sorted(first) != "apply init plan show version" {
		t.Fatalf("commands of the first task: %v, want version init plan apply show\n%s", first, f.sink.text(in.Task.ID))
	}
	// The outputs are those `terraform output` reads.
	tf, err := tfexec.NewTerraform(filepath.Join(f.r.dataDir(), "work", in.Task.ID, "config"), f.tfPath)
	if err != nil {
		t.Fatal(err)
	}
	tf.SetEnv(map[string]string{"TF_CLI_CONFIG_FILE": "/dev/null"})
	metas, err := tf.Output(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := outputValues(metas, secret.NewMasker(task.Secrets{}))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied.Outputs) != fmt.Sprint(want) || applied.Outputs["greeting"] != "hello procs" || applied.Outputs["token"] != SensitiveOutput {
		t.Fatalf("outputs %v, terraform output says %v", applied.Outputs, want)
	}
	f.mustExec("Cleanup", in, nil)

	// The same configuration again, on the same workspace.
	in = task1()
	n := len(first)
	f.mustExec("Init", in, nil)
	var plan PlanOutput
	f.mustExec("Plan", in, &plan)
	f.mustExec("Apply", in, &applied)
	second := commandsSince(t, log, n)
	if sorted(second) != "apply plan show" {
		t.Fatalf("commands of the second task: %v, want plan apply show\n%s", second, f.sink.text(in.Task.ID))
	}
	if !strings.Contains(f.sink.text(in.Task.ID), "terraform init was not needed") {
		t.Errorf("the second init does not say it reused a directory:\n%s", f.sink.text(in.Task.ID))
	}
	if plan.HasChanges || plan.PlannedChanges != 0 || applied.Outputs["greeting"] != "hello procs" {
		t.Fatalf("the second task does not see the first one's state: plan %+v, outputs %v", plan, applied.Outputs)
	}
}

// TestInitTemplateIsPerWorkspaceOnTheLocalBackend: the local backend's
// block names the workspace's state file, so another workspace of the same
// configuration runs its own init and starts from empty state.
func TestInitTemplateIsPerWorkspaceOnTheLocalBackend(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i, ws := range []string{"tmpl-a", "tmpl-b"} {
		in := f.newTask(task.Params{Module: "basic", Workspace: ws}, task.Secrets{})
		in.TerraformPath = f.tfPath
		f.mustExec("Init", in, nil)
		var plan PlanOutput
		f.mustExec("Plan", in, &plan)
		logs := f.sink.text(in.Task.ID)
		if strings.Contains(logs, "terraform init was not needed") {
			t.Fatalf("workspace %s (task %d) used another workspace's directory:\n%s", ws, i, logs)
		}
		if plan.Add != 3 {
			t.Fatalf("workspace %s: plan %+v, want 3 to add (empty state)", ws, plan)
		}
		f.mustExec("Apply", in, nil)
	}
	ents, err := os.ReadDir(filepath.Join(f.r.dataDir(), templatesDir))
	if err != nil || len(ents) != 2 {
		t.Fatalf("templates: %v %v, want one per workspace", ents, err)
	}
}

// TestStaleTemplateIsNotUsed: a template whose provider package is gone is
// dropped, and init runs.
func TestStaleTemplateIsNotUsed(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, ".terraform", "providers", "registry.terraform.io", "hashicorp", "time", "0.14.2", "linux_amd64")
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), link); err != nil {
		t.Fatal(err)
	}
	if why := linkedProviders(filepath.Join(dir, ".terraform")); !strings.Contains(why, "gone from where it was linked") {
		t.Fatalf("linkedProviders = %q", why)
	}
	if err := os.MkdirAll(filepath.Join(dir, "gone"), 0o700); err != nil {
		t.Fatal(err)
	}
	if why := linkedProviders(filepath.Join(dir, ".terraform")); why != "" {
		t.Fatalf("linkedProviders of a good link = %q", why)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(link, 0o700); err != nil {
		t.Fatal(err)
	}
	if why := linkedProviders(filepath.Join(dir, ".terraform")); !strings.Contains(why, "copied, not linked") {
		t.Fatalf("linkedProviders of a copy = %q", why)
	}
}

// TestVersionSeedReachesTerraformExec: a handle seeded with its binary's
// version answers terraform-exec's version checks without running the
// binary (here one that does not exist).
func TestVersionSeedReachesTerraformExec(t *testing.T) {
	if versionField().Type == nil {
		t.Fatal("terraform-exec's handle has no execVersion field of type *version.Version: the version cache no longer reaches it")
	}
	tf, err := tfexec.NewTerraform(t.TempDir(), "/nonexistent/terraform")
	if err != nil {
		t.Fatal(err)
	}
	if handleVersion(tf) != nil {
		t.Fatal("a new handle has a version")
	}
	v := version.Must(version.NewVersion("1.11.4"))
	if !seedVersion(tf, v) {
		t.Fatal("seedVersion failed")
	}
	got, _, err := tf.Version(context.Background(), false)
	if err != nil || !got.Equal(v) || handleVersion(tf) != v {
		t.Fatalf("Version after seeding = %v, %v", got, err)
	}

	// The cache keys binaries by path, size and time.
	bin := filepath.Join(t.TempDir(), "terraform")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var cache binaryVersions
	cache.share(tf, bin) // learns v from tf
	fresh, _ := tfexec.NewTerraform(t.TempDir(), bin)
	cache.share(fresh, bin)
	if handleVersion(fresh) != v {
		t.Fatal("a new handle of the same binary was not seeded")
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n# replaced\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other, _ := tfexec.NewTerraform(t.TempDir(), bin)
	cache.share(other, bin)
	if handleVersion(other) != nil {
		t.Fatal("a handle of a replaced binary was seeded with the old one's version")
	}
}

// TestApplyCleansUpWhenAsked: an apply asked to clean up removes the work
// dir once it succeeded, as Cleanup does; and a plan that no apply showed
// is shown for review by Cleanup.
func TestApplyCleansUpWhenAsked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	f.upTo(&in, true)
	in.CleanUp = true
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if !applied.CleanedUp {
		t.Fatal("the apply did not report that it cleaned up")
	}
	if _, err := os.Stat(filepath.Join(f.r.dataDir(), "work", in.Task.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("work dir left: %v", err)
	}
	if _, err := f.plans.GetPlan(context.Background(), "acme", in.Task.ID); err != nil {
		t.Fatalf("the plan was not kept for review: %v", err)
	}

	// Planned, then cancelled before its apply: Cleanup shows the plan.
	in = f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	f.upTo(&in, true)
	if _, err := f.plans.GetPlan(context.Background(), "acme", in.Task.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the plan was shown before its apply: %v", err)
	}
	f.mustExec("Cleanup", in, nil)
	if _, err := f.plans.GetPlan(context.Background(), "acme", in.Task.ID); err != nil {
		t.Fatalf("Cleanup did not show the plan nobody applied: %v\n%s", err, f.sink.text(in.Task.ID))
	}
}

// TestInitTemplateIsPerEngine: a directory Terraform initialised never
// serves an OpenTofu task of the same configuration and workspace, nor the
// other way round; each engine then reuses its own.
func TestInitTemplateIsPerEngine(t *testing.T) {
	t.Parallel()
	tofu := testbin.Tofu(t)
	f := newFixture(t)
	f.r.TofuPaths = []string{tofu}
	run := func(engine task.Engine, path string) string {
		t.Helper()
		in := f.newTask(task.Params{Engine: engine, Module: "basic", Workspace: "tmpl-engines"}, task.Secrets{})
		in.TerraformPath = path
		f.mustExec("Init", in, nil)
		f.mustExec("Cleanup", in, nil)
		return f.sink.text(in.Task.ID)
	}
	const reused = "init was not needed"
	for i, c := range []struct {
		engine task.Engine
		path   string
		reuse  bool
	}{
		{task.EngineTerraform, f.tfPath, false},
		{task.EngineOpenTofu, tofu, false},
		{task.EngineOpenTofu, tofu, true},
		{task.EngineTerraform, f.tfPath, true},
	} {
		if logs := run(c.engine, c.path); strings.Contains(logs, reused) != c.reuse {
			t.Fatalf("init %d (%s): reused a template = %v, want %v:\n%s", i, c.engine, !c.reuse, c.reuse, logs)
		}
	}
	ents, err := os.ReadDir(filepath.Join(f.r.dataDir(), templatesDir))
	if err != nil || len(ents) != 2 {
		t.Fatalf("templates: %v %v, want one per engine", ents, err)
	}
}
