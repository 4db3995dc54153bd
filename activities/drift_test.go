package activities

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/testbin"
	"github.com/terratask/terratask/task"
)

// TestDriftOfARotatedResource applies a time_rotating whose rotation time
// lies a few seconds ahead, lets that time pass, and checks a drift check
// of the workspace reports it (with the real time provider from a
// filesystem mirror), on both engines; a check right after an apply
// reports no drift.
func TestDriftOfARotatedResource(t *testing.T) {
	t.Parallel()
	mirror := testbin.ProviderMirror(t)
	for _, engine := range []task.Engine{task.EngineTerraform, task.EngineOpenTofu} {
		t.Run(string(engine), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.r.CLIConfigFile = testbin.MirrorCLIConfig(t, t.TempDir(), mirror)
			if engine == task.EngineOpenTofu {
				f.r.TofuPaths = []string{testbin.Tofu(t)}
			}
			apply := func(ws string, at time.Time) task.Params {
				params := task.Params{Engine: engine, Module: "drift", Workspace: ws + "-" + string(engine),
					Variables: map[string]any{"rotate_at": at.UTC().Format(time.RFC3339)}}
				in := f.newTask(params, task.Secrets{})
				f.upTo(&in, true)
				f.mustExec("Apply", in, nil)
				return params
			}
			check := func(params task.Params) *task.Drift {
				params.Action, params.DetectDrift = task.ActionPlan, true
				in := f.newTask(params, task.Secrets{})
				out := f.upTo(&in, true)
				if out.Drift == nil {
					t.Fatalf("a detect_drift plan without drift: %+v", out)
				}
				return out.Drift
			}
			// A workspace the world leaves alone (its rotation is an hour
			// away) has not drifted.
			if d := check(apply("steady", time.Now().Add(time.Hour))); d.Drifted || len(d.Resources) != 0 {
				t.Fatalf("unchanged workspace: %+v", d)
			}
			// One whose rotation time passes has.
			at := time.Now().Add(4 * time.Second).Truncate(time.Second)
			params := apply("moving", at)
			time.Sleep(time.Until(at.Add(time.Second)))
			d := check(params)
			if !d.Drifted {
				t.Fatalf("after the rotation time: %+v", d)
			}
			var gone, recreate bool
			for _, r := range d.Resources {
				if r.Address == "terraform_data.steady" {
					t.Errorf("an unchanged resource is listed: %+v", r)
				}
				gone = gone || (r.Address == "time_rotating.key" && r.Source == "drift" && len(r.Actions) == 1 && r.Actions[0] == "delete")
				recreate = recreate || (r.Address == "time_rotating.key" && r.Source == "plan" && len(r.Actions) == 1 && r.Actions[0] == "create")
			}
			if !gone || !recreate {
				t.Fatalf("drift %+v: want time_rotating.key gone (drift) and created again (plan)", d)
			}
		})
	}
}

// TestEnginesKeepTheirOwnPluginCache: OpenTofu rewrites a plugin cache
// entry Terraform made (and the other way round), which breaks a command of
// the other engine running from it; each engine has a cache of its own.
func TestEnginesKeepTheirOwnPluginCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.r.CLIConfigFile = testbin.MirrorCLIConfig(t, t.TempDir(), testbin.ProviderMirror(t))
	f.r.TofuPaths = []string{testbin.Tofu(t)}
	entry := filepath.Join("registry.terraform.io", "hashicorp", "time", "0.14.2", runtime.GOOS+"_"+runtime.GOARCH)
	vars := map[string]any{"rotate_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	tf := f.newTask(task.Params{Module: "drift", Variables: vars}, task.Secrets{})
	f.upTo(&tf, false)
	before, err := os.Lstat(filepath.Join(f.r.pluginCacheDirOf(task.EngineTerraform), entry))
	if err != nil {
		t.Fatal(err)
	}
	tofu := f.newTask(task.Params{Engine: task.EngineOpenTofu, Module: "drift", Variables: vars}, task.Secrets{})
	f.upTo(&tofu, false)
	after, err := os.Lstat(filepath.Join(f.r.pluginCacheDirOf(task.EngineTerraform), entry))
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("OpenTofu's init touched Terraform's cache entry: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(f.r.pluginCacheDirOf(task.EngineOpenTofu), entry)); err != nil {
		t.Fatalf("OpenTofu's own cache: %v", err)
	}
	// Both still plan from their caches.
	var p PlanOutput
	f.mustExec("Plan", tf, &p)
	f.mustExec("Plan", tofu, &p)
}
