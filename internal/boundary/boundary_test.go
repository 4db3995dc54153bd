package boundary

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/terratask/terratask/"

// runnerPackages are the packages a runner host runs.
var runnerPackages = []string{
	"activities",
	"internal/runnerapi",
	"internal/sandbox",
	"internal/watchdog",
}

// notOnRunners are what a runner host must never link: the master key
// (the control plane's codec and box), a store driver, the server and the
// control plane's activities, workflows and task starts.
var notOnRunners = map[string]string{
	"codec/control":  "the control plane's codec holds the master key",
	"secret/master":  "the master key's box: org keys' derivation and decision proofs",
	"policy":         "policies are evaluated by the control plane, never where task code runs",
	"store/sqlite":   "a store driver: runners hold no store",
	"store/postgres": "a store driver: runners hold no store",
	"server":         "the API server decides plans",
	"controlplane":   "the control plane's activities",
	"workflows":      "the task workflow checks decisions on the control plane",
	"taskstart":      "starting tasks is the control plane's",
	"schedules":      "schedules are the control plane's",
	"auth":           "API keys are the control plane's",
	"internal/app":   "the process wiring of server, dev and runner",
}

// pkg is what `go list -json` says of a package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// goList runs `go list -deps -json` on the module's packages rel and
// returns every package of their graph by import path.
func goList(t *testing.T, rel ...string) map[string]pkg {
	t.Helper()
	args := []string{"list", "-deps", "-json=ImportPath,Imports,Deps"}
	for _, r := range rel {
		args = append(args, module+r)
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// importChain is a chain of imports from one of roots to target.
func importChain(pkgs map[string]pkg, roots []string, target string) []string {
	prev := map[string]string{}
	queue := slices.Clone(roots)
	for _, r := range roots {
		prev[r] = ""
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{strings.TrimPrefix(p, module)}, chain...)
			}
			return chain
		}
		for _, i := range pkgs[p].Imports {
			if _, seen := prev[i]; !seen {
				prev[i] = p
				queue = append(queue, i)
			}
		}
	}
	return nil
}

func TestRunnerHoldsNoMasterKeyStoreOrServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := goList(t, runnerPackages...)
	var roots []string
	for _, r := range runnerPackages {
		roots = append(roots, module+r)
	}
	for forbidden, why := range notOnRunners {
		if _, ok := pkgs[module+forbidden]; ok {
			t.Errorf("a runner host links %s (%s): %s", forbidden, why, strings.Join(importChain(pkgs, roots, module+forbidden), " -> "))
		}
	}
	// The graph must be the one asked for: a renamed package must not
	// pass this test by being absent.
	for _, want := range append(slices.Clone(runnerPackages), "secret", "task") {
		if _, ok := pkgs[module+want]; !ok {
			t.Errorf("the runner's graph has no %s: is the list of runner packages current?", want)
		}
	}
	// And the forbidden packages exist, so their absence means something.
	all := goList(t, "...")
	for forbidden := range notOnRunners {
		if _, ok := all[module+forbidden]; !ok {
			t.Errorf("package %s does not exist: update notOnRunners", forbidden)
		}
	}
	var linked []string
	for p := range pkgs {
		if strings.HasPrefix(p, module) {
			linked = append(linked, strings.TrimPrefix(p, module))
		}
	}
	slices.Sort(linked)
	t.Logf("a runner host links %s", strings.Join(linked, ", "))
}

func TestLeavesAreLeaves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := goList(t, "task", "api")
	for leaf, allowed := range map[string][]string{"task": nil, "api": {"task"}} {
		for _, d := range pkgs[module+leaf].Deps {
			if strings.HasPrefix(d, module) && !slices.Contains(allowed, strings.TrimPrefix(d, module)) {
				t.Errorf("%s imports %s: it is a leaf (allowed: %v)", leaf, strings.TrimPrefix(d, module), allowed)
			}
		}
	}
}
