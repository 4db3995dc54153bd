package activities

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/filelock"
	"github.com/terratask/terratask/task"
)

// initHangGuard bounds an init that must not wait, so a wrong lock mode fails
// the test instead of hanging it; no assertion depends on the time.
const initHangGuard = 2 * time.Minute

const (
	sharesCache = "init shares the cache"
	waitsHere   = "waiting for another terraform init on this runner"
	waitsOther  = "waiting for a terraform init of another process"
)

// initTask runs Init of a catalog module as a new task and returns its logs.
func (f *fixture) initTask(ctx context.Context, module, workspace string) (string, error) {
	in := f.newTask(task.Params{Module: module, Workspace: workspace}, task.Secrets{})
	in.TerraformPath = f.tfPath
	err := f.exec(ctx, "Init", in, nil)
	return f.sink.text(in.Task.ID), err
}

func (f *fixture) mustInit(module string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), initHangGuard)
	defer cancel()
	logs, err := f.initTask(ctx, module, "")
	if err != nil {
		f.t.Fatalf("init of %s: %v\nlogs:\n%s", module, err, logs)
	}
	return logs
}

// warmMarkers lists the init keys recorded as warm.
func (f *fixture) warmMarkers() []string {
	f.t.Helper()
	ents, err := os.ReadDir(filepath.Join(f.r.pluginCacheDir(), warmDir))
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	var keys []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			keys = append(keys, e.Name())
		}
	}
	return keys
}

// waitForLog waits until a task's logs, flushed at each heartbeat tick,
// contain s, or until a started init returns.
func (f *fixture) waitForLog(taskLogs func() string, s string, done <-chan error) {
	f.t.Helper()
	deadline := time.Now().Add(initHangGuard)
	for !strings.Contains(taskLogs(), s) {
		select {
		case err := <-done:
			f.t.Fatalf("init returned (%v) before logging %q:\n%s", err, s, taskLogs())
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no %q in the logs:\n%s", s, taskLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWarmInitsShareThePluginCache holds the cache lock shared, as a warm
// init would, in this process and in another open file description (what
// another process sharing the data dir has): a warm init still runs, a cold
// one waits until the holder lets go.
func TestWarmInitsShareThePluginCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.mustInit("basic")
	if strings.Contains(first, sharesCache) {
		t.Fatalf("the first init shared the cache:\n%s", first)
	}
	if keys := f.warmMarkers(); len(keys) != 1 {
		t.Fatalf("warm keys after the first init: %v, want one", keys)
	}

	holders := []struct {
		name, waits, cold string
		hold              func() (release func())
	}{
		{"in this process", waitsHere, "required", func() func() {
			if !f.r.st().initLock.TryRLock() {
				t.Fatal("cannot hold the in-process lock shared")
			}
			return f.r.st().initLock.RUnlock
		}},
		{"in another process", waitsOther, "slow", func() func() {
			l, err := filelock.TryAcquireShared(f.r.pluginCacheDir() + ".lock")
			if err != nil || l == nil {
				t.Fatalf("cannot hold the file lock shared: %v", err)
			}
			return func() { l.Release() }
		}},
	}
	for _, h := range holders {
		release := h.hold()
		warm := f.mustInit("basic")
		if !strings.Contains(warm, sharesCache) || strings.Contains(warm, "waiting for") {
			t.Errorf("%s: the warm init did not share the cache at once:\n%s", h.name, warm)
		}

		in := f.newTask(task.Params{Module: h.cold}, task.Secrets{})
		in.TerraformPath = f.tfPath
		ctx, cancel := context.WithTimeout(context.Background(), initHangGuard)
		done := make(chan error, 1)
		go func() { done <- f.exec(ctx, "Init", in, nil) }()
		f.waitForLog(func() string { return f.sink.text(in.Task.ID) }, h.waits, done)
		select {
		case err := <-done:
			t.Fatalf("%s: the cold init ended (%v) while the cache was held", h.name, err)
		default:
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("%s: cold init: %v\n%s", h.name, err, f.sink.text(in.Task.ID))
		}
		cancel()
		if strings.Contains(f.sink.text(in.Task.ID), sharesCache) {
			t.Errorf("%s: the cold init shared the cache", h.name)
		}
	}
}

// TestQueuedInitsOfOneKeyTurnWarm queues two cold inits of one
// configuration behind a held lock: once the first has cached its
// providers, the second shares the cache instead of taking it alone.
func TestQueuedInitsOfOneKeyTurnWarm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gate := &f.r.st().initLock
	if !gate.TryLock() {
		t.Fatal("cannot hold the in-process lock")
	}
	ctx, cancel := context.WithTimeout(context.Background(), initHangGuard)
	defer cancel()
	var ids []string
	var dones []chan error
	for range 2 {
		in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
		in.TerraformPath = f.tfPath
		done := make(chan error, 1)
		go func() { done <- f.exec(ctx, "Init", in, nil) }()
		f.waitForLog(func() string { return f.sink.text(in.Task.ID) }, waitsHere, done)
		ids = append(ids, in.Task.ID)
		dones = append(dones, done)
	}
	gate.Unlock()
	shared := 0
	for i, done := range dones {
		if err := <-done; err != nil {
			t.Fatalf("init %d: %v\n%s", i, err, f.sink.text(ids[i]))
		}
		if strings.Contains(f.sink.text(ids[i]), "another init just cached every provider") {
			shared++
		}
	}
	if shared != 1 {
		t.Errorf("%d of the 2 queued inits turned warm, want 1:\n%s\n%s", shared, f.sink.text(ids[0]), f.sink.text(ids[1]))
	}
}

// TestWarmInitWaitsForAnExclusiveOne holds the cache lock exclusively, as a
// cold init would: a warm init waits for it too.
func TestWarmInitWaitsForAnExclusiveOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustInit("basic")
	l, err := filelock.TryAcquire(f.r.pluginCacheDir() + ".lock")
	if err != nil || l == nil {
		t.Fatalf("cannot hold the file lock: %v", err)
	}
	in := f.newTask(task.Params{Module: "basic"}, task.Secrets{})
	in.TerraformPath = f.tfPath
	ctx, cancel := context.WithTimeout(context.Background(), initHangGuard)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.exec(ctx, "Init", in, nil) }()
	f.waitForLog(func() string { return f.sink.text(in.Task.ID) }, waitsOther, done)
	l.Release()
	if err := <-done; err != nil {
		t.Fatalf("warm init: %v\n%s", err, f.sink.text(in.Task.ID))
	}
}

// TestFailedWarmInitDropsItsKey makes a warm init fail in terraform (its
// state path is a directory): the next init of the configuration takes the
// cache exclusively and records it again.
func TestFailedWarmInitDropsItsKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustInit("basic")
	if len(f.warmMarkers()) != 1 {
		t.Fatalf("warm keys: %v, want one", f.warmMarkers())
	}
	broken := filepath.Join(f.r.DataDir, "state", "acme", "broken", "terraform.tfstate")
	if err := os.MkdirAll(broken, 0o700); err != nil {
		t.Fatal(err)
	}
	logs, err := f.initTask(context.Background(), "basic", "broken")
	if err == nil {
		t.Fatalf("init with a directory as state succeeded:\n%s", logs)
	}
	if !strings.Contains(logs, sharesCache) {
		t.Fatalf("the failing init was not warm:\n%s", logs)
	}
	if keys := f.warmMarkers(); len(keys) != 0 {
		t.Fatalf("warm keys after a failed warm init: %v, want none", keys)
	}
	if logs := f.mustInit("basic"); strings.Contains(logs, sharesCache) {
		t.Errorf("the init after a failed warm one shared the cache:\n%s", logs)
	}
	if len(f.warmMarkers()) != 1 {
		t.Errorf("warm keys: %v, want one again", f.warmMarkers())
	}
}

// TestProviderInitsAreWarmOnlyWithALockFile installs a provider from a
// filesystem mirror through the plugin cache. Without a dependency lock file
// Terraform picks the newest release, so the configuration stays cold; with
// one, its inits turn warm, and cold again when the cached package is gone.
func TestProviderInitsAreWarmOnlyWithALockFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tmp := t.TempDir()
	platform := runtime.GOOS + "_" + runtime.GOARCH
	pkg := filepath.Join(tmp, "mirror", "example.com", "test", "fake", "1.0.0", platform)
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	// Init never runs a provider, so a script stands for one.
	if err := os.WriteFile(filepath.Join(pkg, "terraform-provider-fake_v1.0.0"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.r.CLIConfigFile = filepath.Join(tmp, "terraform.rc")
	rc := "disable_checkpoint = true\nprovider_installation {\n  filesystem_mirror {\n    path = " + hclString(filepath.Join(tmp, "mirror")) + "\n  }\n}\n"
	if err := os.WriteFile(f.r.CLIConfigFile, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	f.r.ModulesDir = filepath.Join(tmp, "catalog")
	module := filepath.Join(f.r.ModulesDir, "fake")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	tf := "terraform {\n  required_providers {\n    fake = { source = \"example.com/test/fake\" }\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}

	in := f.newTask(task.Params{Module: "fake"}, task.Secrets{})
	in.TerraformPath = f.tfPath
	f.mustExec("Init", in, nil)
	if keys := f.warmMarkers(); len(keys) != 0 {
		t.Fatalf("warm keys after an init that chose versions: %v, want none", keys)
	}
	lock, err := os.ReadFile(filepath.Join(f.r.DataDir, "work", in.Task.ID, "config", lockFileName))
	if err != nil {
		t.Fatalf("init wrote no lock file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(module, lockFileName), lock, 0o644); err != nil {
		t.Fatal(err)
	}

	logs := f.mustInit("fake")
	if strings.Contains(logs, sharesCache) {
		t.Fatalf("the first init with a lock file shared the cache:\n%s", logs)
	}
	keys := f.warmMarkers()
	if len(keys) != 1 {
		t.Fatalf("warm keys: %v, want one; logs:\n%s", keys, logs)
	}
	b, err := os.ReadFile(f.r.warmMarker(f.r.pluginCacheDir(), keys[0]))
	if want := "example.com/test/fake/1.0.0/" + platform + "\n"; err != nil || string(b) != want {
		t.Fatalf("marker = %q, %v; want %q", b, err, want)
	}
	if logs := f.mustInit("fake"); !strings.Contains(logs, sharesCache) {
		t.Fatalf("the second init with a lock file did not share the cache:\n%s", logs)
	}

	// A wiped cache entry makes the key cold; the exclusive init
	// installs the package again and the key turns warm again.
	if err := os.RemoveAll(filepath.Join(f.r.pluginCacheDir(), "example.com")); err != nil {
		t.Fatal(err)
	}
	if logs := f.mustInit("fake"); strings.Contains(logs, sharesCache) {
		t.Fatalf("an init whose provider left the cache shared it:\n%s", logs)
	}
	if logs := f.mustInit("fake"); !strings.Contains(logs, sharesCache) {
		t.Fatalf("the cache did not heal:\n%s", logs)
	}
}
