package activities

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/modules"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func TestApplyThenDestroyOnSharedWorkspace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	in := f.newTask(task.Params{Module: "basic", Workspace: "shared",
		Variables: map[string]any{"name": "terratask", "app_name": "ignored"}},
		task.Secrets{SensitiveVariables: map[string]any{"token": "tok-123456"}})
	var claim ClaimOutput
	f.mustExec("Claim", in, &claim)
	if claim.Host != "host-a" || claim.HostQueue != task.HostTaskQueue("acme", "test", "host-a") {
		t.Errorf("claim = %+v", claim)
	}
	plan := f.upTo(&in, true)
	if !plan.HasChanges || plan.PlannedChanges != 3 || plan.Add != 3 || plan.Change != 0 || plan.Remove != 0 {
		t.Errorf("plan = %+v, want 3 to add", plan)
	}
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if applied.ChangesDone != 3 {
		t.Errorf("changes done = %d, want 3", applied.ChangesDone)
	}
	want := map[string]any{"greeting": "hello terratask", "token": SensitiveOutput}
	if len(applied.Outputs) != len(want) {
		t.Errorf("outputs = %v, want %v", applied.Outputs, want)
	}
	for k, v := range want {
		if applied.Outputs[k] != v {
			t.Errorf("output %s = %v, want %v", k, applied.Outputs[k], v)
		}
	}
	f.mustExec("Cleanup", in, nil)
	if os.Getenv("TERRATASK_TEST_DUMP") != "" {
		t.Log(f.sink.text(in.Task.ID))
	}

	logs := f.sink.all(in.Task.ID)
	checkStreams(t, logs)
	var sawResource, sawRunner bool
	for _, e := range logs {
		md := e.Metadata
		if md["component"] == "terraform" && md["type"] == "apply_complete" && md["resource"] == "terraform_data.first" {
			sawResource = true
		}
		if md["component"] == "runner" && strings.Contains(e.Message, "picked up by host host-a (run 1)") {
			sawRunner = true
		}
		if strings.Contains(e.Message, "tok-123456") {
			t.Errorf("secret in log: %q", e.Message)
		}
	}
	if !sawResource || !sawRunner {
		t.Errorf("missing terraform resource line (%v) or runner claim line (%v):\n%s", sawResource, sawRunner, f.sink.text(in.Task.ID))
	}
	if _, err := os.Stat(filepath.Join(f.r.DataDir, "work", in.Task.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir still there after Cleanup: %v", err)
	}
	f.mustExec("Cleanup", in, nil) // idempotent

	// A second task on the same workspace sees the state and destroys it.
	in2 := f.newTask(task.Params{Module: "basic", Workspace: "shared", Action: task.ActionDestroy}, task.Secrets{})
	plan = f.upTo(&in2, true)
	if plan.Remove != 3 || plan.PlannedChanges != 3 || plan.Add != 0 {
		t.Errorf("destroy plan = %+v, want 3 to remove", plan)
	}
	var destroyed ApplyOutput
	f.mustExec("Apply", in2, &destroyed)
	if destroyed.ChangesDone != 3 || len(destroyed.Outputs) != 0 {
		t.Errorf("destroy = %+v, want 3 changes and no outputs", destroyed)
	}
	var destroying bool
	for _, e := range f.sink.all(in2.Task.ID) {
		destroying = destroying || strings.HasPrefix(e.Stream, "run1/destroying/attempt1")
	}
	if !destroying {
		t.Errorf("no destroying stream:\n%s", f.sink.text(in2.Task.ID))
	}
}

// checkStreams checks each stream's Seq runs from 1 without gaps and every
// entry carries its step, attempt, run and component.
func checkStreams(t *testing.T, logs []store.LogEntry) {
	t.Helper()
	next := map[string]int64{}
	for _, e := range logs {
		next[e.Stream]++
		if e.Seq != next[e.Stream] {
			t.Errorf("stream %s: seq %d, want %d", e.Stream, e.Seq, next[e.Stream])
		}
		md := e.Metadata
		if md["step"] == nil || md["attempt"] == nil || md["run"] == nil || md["component"] == nil {
			t.Errorf("entry %q lacks metadata: %v", e.Message, md)
		}
		if !strings.HasPrefix(e.Stream, "run1/") || !strings.HasSuffix(e.Stream, "/attempt1") {
			t.Errorf("stream name %q", e.Stream)
		}
		if e.Timestamp.IsZero() {
			t.Errorf("entry %q has no timestamp", e.Message)
		}
	}
	for _, s := range []string{"run1/claim/attempt1", "run1/installing/attempt1", "run1/initializing/attempt1", "run1/planning/attempt1", "run1/applying/attempt1"} {
		if next[s] == 0 {
			t.Errorf("no entries in stream %s", s)
		}
	}
}

func TestPlanOnlyChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic", Action: task.ActionPlan}, task.Secrets{})
	plan := f.upTo(&in, true)
	if !plan.HasChanges || plan.Add != 3 {
		t.Fatalf("plan = %+v", plan)
	}
	// The workflow stops here; a new plan of the same workspace still
	// plans every resource, so nothing was applied.
	in2 := in
	in2.Run = 2
	f.mustExec("Init", in2, nil)
	var again PlanOutput
	f.mustExec("Plan", in2, &again)
	if again.Add != 3 {
		t.Errorf("second plan = %+v, want 3 to add again", again)
	}
}

func TestDefaultDemoModuleWithSeedParameters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.r.DefaultModule = filepath.Join(t.TempDir(), "demo")
	if err := modules.WriteDemo(f.r.DefaultModule); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reports []task.Progress
	f.r.Progress = func(_ context.Context, workflowID, _ string, p task.Progress) error {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, p)
		return nil
	}
	in := f.newTask(task.Params{Variables: map[string]any{"app_name": "my-app", "deploy_strategy": "rolling"}}, task.Secrets{})
	plan := f.upTo(&in, true)
	if plan.PlannedChanges < 5 {
		t.Errorf("demo plan = %+v, want at least 5 changes", plan)
	}
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if applied.ChangesDone != plan.PlannedChanges {
		t.Errorf("done %d of %d", applied.ChangesDone, plan.PlannedChanges)
	}
	if s, _ := applied.Outputs["app_name"].(string); s != "my-app" {
		t.Errorf("outputs = %v", applied.Outputs)
	}
	if !strings.Contains(f.sink.text(in.Task.ID), "deployed my-app (rolling)") {
		t.Errorf("demo logs do not show the deploy:\n%s", f.sink.text(in.Task.ID))
	}
	// Progress moved resource by resource while applying.
	mu.Lock()
	defer mu.Unlock()
	var partial bool
	last := -1
	for _, p := range reports {
		if p.Step != task.StepApplying {
			continue
		}
		if p.ChangesDone < last {
			t.Errorf("progress went back: %v", reports)
		}
		last = p.ChangesDone
		partial = partial || (p.ChangesDone > 0 && p.ChangesDone < plan.PlannedChanges && p.PlannedChanges == plan.PlannedChanges)
	}
	if !partial {
		t.Errorf("no progress report inside the apply: %v", reports)
	}
}

func TestBrokenConfigurationFailsWithDiagnostics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Files: map[string]string{
		"main.tf": "resource \"terraform_data\" \"a\" {\n  input = \n}\n",
	}}, task.Secrets{})
	var inst InstallOutput
	f.mustExec("Install", in, &inst)
	in.TerraformPath = inst.TerraformPath
	err := f.exec(nil, "Init", in, nil)
	appErr, te := taskErrorOf(t, err)
	if !appErr.NonRetryable() || appErr.Type() != task.CodeConfig || te.Code != task.CodeConfig {
		t.Fatalf("err = %v (type %s, non-retryable %v)", err, appErr.Type(), appErr.NonRetryable())
	}
	if te.Details["step"] != "initializing" {
		t.Errorf("details step = %v", te.Details["step"])
	}
	diags := diagnosticsOf(t, te)
	if len(diags) == 0 {
		t.Fatalf("no diagnostics in %v", te)
	}
	var found bool
	for _, d := range diags {
		found = found || (d["summary"] == "Invalid expression" && d["file"] == "main.tf" && d["line"] == float64(2) && d["severity"] == "error")
	}
	if !found {
		t.Errorf("diagnostics = %v", diags)
	}
	if !strings.Contains(te.Message, "Invalid expression") {
		t.Errorf("message = %q", te.Message)
	}
}

func TestMissingRequiredVariable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "required"}, task.Secrets{})
	f.upTo(&in, false)
	err := f.exec(nil, "Plan", in, nil)
	appErr, te := taskErrorOf(t, err)
	if !appErr.NonRetryable() || te.Code != task.CodeTerraform {
		t.Fatalf("err = %v", err)
	}
	diags := diagnosticsOf(t, te)
	if len(diags) == 0 || diags[0]["summary"] != "No value for required variable" || !strings.Contains(fmt.Sprint(diags[0]["detail"]), `"needed"`) {
		t.Errorf("diagnostics = %v", diags)
	}
}

func TestInlineFileNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"../x.tf", false},
		{"a/b.tf", false},
		{`a\b.tf`, false},
		{".hidden.tf", false},
		{"x..tf", false},
		{"main.exe", false},
		{"", false},
		{backendFile, false},
		{"ok.tf", true},
		{"vars.auto.tfvars.json", true},
		{"setup.sh", true},
	} {
		err := checkFileName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("checkFileName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}

	// Through the activity: a bad name fails Init with a configuration
	// error and writes nothing outside the work dir.
	f := newFixture(t)
	for _, name := range []string{"../x.tf", "a/b.tf", ".hidden.tf"} {
		in := f.newTask(task.Params{Files: map[string]string{"main.tf": "", name: "# x"}}, task.Secrets{})
		err := f.exec(nil, "Init", in, nil)
		appErr, te := taskErrorOf(t, err)
		if appErr.Type() != task.CodeConfig || !appErr.NonRetryable() || !strings.Contains(te.Message, "files:") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.r.DataDir, "work", "x.tf")); err == nil {
		t.Error("a file escaped the work dir")
	}
	in := f.newTask(task.Params{Files: map[string]string{"ok.tf": "output \"x\" { value = 1 }\n"}}, task.Secrets{})
	f.upTo(&in, false)
}

func TestConfigurationChoiceErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "main.tf"), []byte("output \"x\" { value = 1 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink inside an allowed root that leads outside it.
	root := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	f.r.SourceRoots = append(f.r.SourceRoots, root)

	for _, tc := range []struct {
		name   string
		params task.Params
		env    map[string]string
		want   string
	}{
		{"nothing", task.Params{}, nil, "no module, source or files given and the runner has no default module"},
		{"two", task.Params{Module: "basic", Source: "/x"}, nil, "only one of"},
		{"module path", task.Params{Module: "../basic"}, nil, "not a module name"},
		{"module dots", task.Params{Module: ".."}, nil, "not a module name"},
		{"unknown module", task.Params{Module: "nope"}, nil, "not in this runner's catalog"},
		{"source outside roots", task.Params{Source: outside}, nil, "outside the runner's allowed source roots"},
		{"source via symlink", task.Params{Source: filepath.Join(root, "escape")}, nil, "outside the runner's allowed source roots"},
		{"relative source", task.Params{Source: "../testdata/basic"}, nil, "absolute path"},
		{"file getter", task.Params{Source: "git::file:///etc"}, nil, "file sources are not allowed"},
		{"credentials", task.Params{Source: "git::https://u:p@example.com/r.git"}, nil, "credentials"},
		{"remote source, none allowed", task.Params{Source: "git::http://127.0.0.1/x"}, nil, "fetches no remote module sources (it runs without --source-allow)"},
		{"metadata source", task.Params{Source: "http://169.254.169.254/latest/"}, nil, "--source-allow"},
		{"s3 source", task.Params{Source: "s3::https://s3.amazonaws.com/bucket/x.zip"}, nil, "--source-allow"},
		{"registry source", task.Params{Source: "hashicorp/consul/aws"}, nil, "the module registry registry.terraform.io"},
		{"bad workspace", task.Params{Module: "basic", Workspace: "../x"}, nil, "invalid workspace"},
		{"tf var env", task.Params{Module: "basic"}, map[string]string{"TF_VAR_x": "1"}, "TF_VAR_x cannot be set"},
		{"runner env", task.Params{Module: "basic"}, map[string]string{"TF_CLI_CONFIG_FILE": "/x"}, "set by the runner"},
	} {
		in := f.newTask(tc.params, task.Secrets{Env: tc.env})
		err := f.exec(nil, "Init", in, nil)
		if err == nil {
			t.Errorf("%s: Init succeeded", tc.name)
			continue
		}
		appErr, te := taskErrorOf(t, err)
		if appErr.Type() != task.CodeConfig || !appErr.NonRetryable() || !strings.Contains(te.Message, tc.want) {
			t.Errorf("%s: err = %v (type %s), want configuration_error containing %q", tc.name, err, appErr.Type(), tc.want)
		}
	}

	// A local source inside an allowed root is copied.
	basic, _ := filepath.Abs("testdata/basic")
	in := f.newTask(task.Params{Source: basic}, task.Secrets{})
	if plan := f.upTo(&in, true); plan.Add != 3 {
		t.Errorf("plan of a local source = %+v", plan)
	}
}

func TestRemoteSourceThroughFromModule(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	archive := tarGz(t, "testdata/basic")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/basic.tar.gz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(archive)
	}))
	defer srv.Close()

	// Refused unless --source-allow lists the host.
	in := f.newTask(task.Params{Source: srv.URL + "/basic.tar.gz"}, task.Secrets{})
	in.TerraformPath = f.tfPath
	appErr, te := taskErrorOf(t, f.exec(nil, "Init", in, nil))
	if appErr.Type() != task.CodeConfig || !strings.Contains(te.Message, "--source-allow") {
		t.Fatalf("unlisted source host: %v", appErr)
	}
	allow, err := events.ParseAllowListFlag("--source-allow", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	f.r.SourceAllow = allow

	in = f.newTask(task.Params{Source: srv.URL + "/basic.tar.gz"}, task.Secrets{})
	if plan := f.upTo(&in, true); plan.Add != 3 {
		t.Errorf("plan of a remote source = %+v", plan)
	}

	// A source that cannot be fetched is Terraform's failure, not the
	// configuration's.
	in = f.newTask(task.Params{Source: srv.URL + "/missing.tar.gz"}, task.Secrets{})
	in.TerraformPath = f.tfPath
	appErr, te = taskErrorOf(t, f.exec(nil, "Init", in, nil))
	if appErr.Type() != task.CodeTerraform || !strings.Contains(te.Message, "Failed to download module") {
		t.Errorf("err = %v", appErr)
	}
}

// tarGz archives a directory in memory.
func tarGz(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInstallFailureListsWhatWasTried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic", TerraformVersion: "0.12.31"}, task.Secrets{})
	err := f.exec(nil, "Install", in, nil)
	appErr, te := taskErrorOf(t, err)
	if appErr.Type() != task.CodeInstall || !appErr.NonRetryable() {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{"PATH", "cache", "download"} {
		if !strings.Contains(te.Message, s) {
			t.Errorf("message %q does not mention %s", te.Message, s)
		}
	}
	in = f.newTask(task.Params{TerraformVersion: "banana"}, task.Secrets{})
	appErr, _ = taskErrorOf(t, f.exec(nil, "Install", in, nil))
	if appErr.Type() != task.CodeConfig {
		t.Errorf("invalid version: type %s", appErr.Type())
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const token, apiKey = "tok-9f8e7d6c5b", "key-0a1b2c3d4e"
	in := f.newTask(task.Params{Module: "leak"},
		task.Secrets{SensitiveVariables: map[string]any{"token": token}, Env: map[string]string{"API_KEY": apiKey}})
	f.upTo(&in, false)

	// While Plan runs, no command line may hold a secret, and the var file
	// must be private.
	stop := make(chan struct{})
	var watch sync.WaitGroup
	var problems []string
	watch.Add(1)
	go func() {
		defer watch.Done()
		varFile := filepath.Join(f.r.DataDir, "work", in.Task.ID, ".terratask", "vars.tfvars.json")
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, secret := range []string{token, apiKey} {
				if p := procsWith(secret); len(p) > 0 {
					problems = append(problems, "secret on a command line: "+strings.Join(p, "; "))
				}
			}
			if fi, err := os.Stat(varFile); err == nil && fi.Mode().Perm() != 0o600 {
				problems = append(problems, "var file mode "+fi.Mode().String())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var plan PlanOutput
	f.mustExec("Plan", in, &plan)
	close(stop)
	watch.Wait()
	for _, p := range problems {
		t.Error(p)
	}

	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if applied.Outputs["echoed"] != "token was ***" {
		t.Errorf("output = %v, want the token masked", applied.Outputs["echoed"])
	}
	var masked bool
	for _, e := range f.sink.all(in.Task.ID) {
		all := e.Message
		for _, v := range e.Metadata {
			if s, ok := v.(string); ok {
				all += " " + s
			}
		}
		if strings.Contains(all, token) || strings.Contains(all, apiKey) {
			t.Errorf("secret in log entry: %q %v", e.Message, e.Metadata)
		}
		masked = masked || strings.Contains(e.Message, "token=*** key=***")
	}
	if !masked {
		t.Errorf("the local-exec line with masked values is missing:\n%s", f.sink.text(in.Task.ID))
	}
}

func TestVarFileIsPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "vars.tfvars.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeVarFile(path, map[string]any{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("var file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestConcurrentInitsShareThePluginCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
		in.TerraformPath = f.tfPath
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.exec(nil, "Init", in, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("init %d: %v", i, err)
		}
	}
}

func TestCancelDuringApplyStopsEverything(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A unique sleep length marks this test's processes.
	secs := "37." + time.Now().Format("150405000")
	in := f.newTask(task.Params{Module: "slow", Workspace: "cancel-ws", Variables: map[string]any{"secs": secs}}, task.Secrets{})
	f.upTo(&in, true)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.exec(ctx, "Apply", in, nil) }()

	deadline := time.Now().Add(15 * time.Second)
	for len(procsWith("sleep "+secs)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the provisioner never started:\n%s", f.sink.text(in.Task.ID))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let a heartbeat tick see it
	start := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Apply did not return after cancel")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("Apply took %v to return after cancel", d)
	}
	// A real worker reports ctx.Err() of a cancelled activity as a
	// cancellation; the test environment, cancelled through its background
	// context, passes the error on as it is.
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) && !strings.Contains(fmt.Sprint(err), context.Canceled.Error()) {
		t.Errorf("err = %v (%T), want cancelled", err, err)
	}
	if left := procsWith(secs); len(left) > 0 {
		t.Errorf("processes survived the cancel: %v", left)
	}
	var sawCancel bool
	for _, e := range f.sink.all(in.Task.ID) {
		if strings.HasPrefix(e.Stream, "run1/applying/") && strings.Contains(e.Message, "cancelled") {
			sawCancel = true
		}
	}
	if !sawCancel {
		t.Errorf("no cancel line flushed:\n%s", f.sink.text(in.Task.ID))
	}
	if os.Getenv("TERRATASK_TEST_DUMP") != "" {
		t.Log(f.sink.text(in.Task.ID))
	}

	// The state lock was released: another task plans the same workspace.
	in2 := f.newTask(task.Params{Module: "slow", Workspace: "cancel-ws", Variables: map[string]any{"secs": "0"}, Action: task.ActionPlan}, task.Secrets{})
	in2.TerraformPath = f.tfPath
	f.mustExec("Init", in2, nil)
	f.mustExec("Plan", in2, nil)
}

func TestSpooledLogsOfAnEarlierStreamAreResent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	paths, err := f.r.paths(in.Task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(paths.private, 0o700); err != nil {
		t.Fatal(err)
	}
	// A process died mid-plan: three entries spooled, one flushed.
	book := newLogBook(f.sink, in.Task.ID, "run1/planning/attempt1", paths.private, secret.NewMasker(task.Secrets{}), map[string]any{"step": "planning"}, f.r.logger())
	for _, m := range []string{"one", "two", "three"} {
		book.runner(task.LevelInfo, "%s", m)
	}
	if err := writeMark(markName(filepath.Join(paths.private, spoolName("run1/planning/attempt1"))), 1); err != nil {
		t.Fatal(err)
	}
	book.spool.Close()

	in.Run = 2
	f.mustExec("Claim", in, nil)
	var got []string
	for _, e := range f.sink.all(in.Task.ID) {
		if e.Stream == "run1/planning/attempt1" {
			got = append(got, e.Message)
		}
	}
	if strings.Join(got, ",") != "two,three" {
		t.Errorf("re-sent %v, want two,three (one was flushed already)", got)
	}
	if _, err := os.Stat(filepath.Join(paths.private, spoolName("run1/planning/attempt1"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spool kept after a full flush: %v", err)
	}
}

func TestLogsSurviveAStoreOutage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	f.sink.mu.Lock()
	f.sink.fail = true
	f.sink.mu.Unlock()
	var inst InstallOutput
	f.mustExec("Install", in, &inst) // succeeds; its lines stay spooled
	if n := len(f.sink.all(in.Task.ID)); n != 0 {
		t.Fatalf("%d entries stored while the store was down", n)
	}
	// Cleanup refuses to delete unsent lines.
	if err := f.exec(nil, "Cleanup", in, nil); err == nil {
		t.Fatal("Cleanup succeeded with unsent logs")
	}
	f.sink.mu.Lock()
	f.sink.fail = false
	f.sink.mu.Unlock()
	f.mustExec("Cleanup", in, nil)
	var found bool
	for _, e := range f.sink.all(in.Task.ID) {
		found = found || (e.Stream == "run1/installing/attempt1" && strings.Contains(e.Message, "using terraform"))
	}
	if !found {
		t.Errorf("install lines lost:\n%s", f.sink.text(in.Task.ID))
	}
}
