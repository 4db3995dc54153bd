package bench

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/task"
)

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := Summarise(ds)
	if d.N != 200 || d.P50 != 100.5 || d.P99 != 198 || d.Min != 1 || d.Max != 200 {
		t.Fatalf("Summarise = %+v", d)
	}
	if d := Summarise([]time.Duration{3 * time.Millisecond}); d.P50 != 3 || d.P99 != 3 {
		t.Fatalf("one sample: %+v", d)
	}
	if Median([]float64{5, 1, 3}) != 3 {
		t.Fatal("Median")
	}
}

func TestFixtures(t *testing.T) {
	f := ResourcesFixture(3)
	tf := f.Files["main.tf"]
	if strings.Count(tf, `resource "terraform_data"`) != 3 || !strings.Contains(tf, "terraform_data.r2.id") {
		t.Fatalf("3 resources:\n%s", tf)
	}
	s := SlowFixture(5, 1)
	if s.Parallelism != 1 || !strings.Contains(s.Files["main.tf"], "count = 5") || !strings.Contains(s.Files["main.tf"], `"sleep 1"`) {
		t.Fatalf("slow fixture: %+v", s)
	}
}

func TestAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"1.11.4": true, "1.9.0": true, "1.8.5": false, "1.6.3": false, "2.0.0": true, "v1.10.0-beta1": true, "x": false} {
		if got := atLeast(v, 1, 9); got != want {
			t.Errorf("atLeast(%q, 1, 9) = %v", v, got)
		}
	}
}

func TestPackageAndOwner(t *testing.T) {
	for sym, want := range map[string]string{
		"runtime.mallocgc": "runtime",
		"go.temporal.io/server/service/history.(*historyEngineImpl).RecordActivityTaskStarted": "go.temporal.io/server/service/history",
		"modernc.org/sqlite/lib.Xsqlite3VdbeExec":                                              "modernc.org/sqlite/lib",
		"do_syscall_64": "do_syscall_64",
	} {
		if got := symbolPackage(sym); got != want {
			t.Errorf("symbolPackage(%q) = %q, want %q", sym, got, want)
		}
	}
	stack := []string{"modernc.org/sqlite/lib.Xsqlite3VdbeExec", "database/sql.(*DB).ExecContext",
		"go.temporal.io/server/common/persistence/sql.(*store).Write", "runtime.goexit"}
	if got, fn := ownerOf(stack); got != "Temporal server: persistence (SQLite)" || fn != "sql.(*store).Write" {
		t.Errorf("ownerOf = %q, %q", got, fn)
	}
	if got, _ := ownerOf([]string{"runtime.scanblock", "runtime.gcBgMarkWorker", "runtime.goexit"}); got != "Go runtime: background GC" {
		t.Errorf("ownerOf(GC) = %q", got)
	}
	p, err := parsePerfScript(strings.NewReader("terratask 1 \n\t 1 runtime.mallocgc\n\t 2 github.com/terratask/terratask/store/sqlite.(*Store).AppendLogs\n\nterraform 2 \n\t 3 main.main\n\n"), nil)
	if err != nil || p.Samples != 1 || p.ByOwner[0].Name != "terratask: store" {
		t.Fatalf("parsePerfScript = %+v, %v", p, err)
	}
}

func TestPrependSection(t *testing.T) {
	first := PrependSection(nil, "## run 1\n\ntable 1\n")
	second := PrependSection(first, "## run 2\n\ntable 2\n")
	s := string(second)
	if strings.Count(s, "# terratask benchmark results") != 1 || strings.Index(s, "## run 2") > strings.Index(s, "## run 1") || !strings.Contains(s, "table 1") {
		t.Fatalf("second file:\n%s", s)
	}
}

func TestTableRendering(t *testing.T) {
	res := &Results{
		Settings: Settings{RPSClients: 50, RPSSeconds: 5},
		Overhead: []OverheadResult{
			{Fixture: "1 resource", Resources: 1, Task: Dist{N: 3, P50: 370, P99: 500}, Bare: Dist{N: 3, P50: 380, P99: 400}, AddedMS: -10, Ratio: 370.0 / 380},
			{Fixture: "5 resources", Resources: 5, Task: Dist{N: 3, P50: 450, P99: 500}, Bare: Dist{N: 3, P50: 380, P99: 400}, AddedMS: 70, Ratio: 450.0 / 380},
			{Fixture: "time provider", Provider: true, Task: Dist{N: 3, P50: 700, P99: 800}, Bare: Dist{N: 3, P50: 1000, P99: 1100}, AddedMS: -300, Ratio: 0.7},
			{Fixture: "5 x 1 s sleep, parallelism 1", Task: Dist{N: 1, P50: 5600, P99: 5600}, Bare: Dist{N: 1, P50: 5500, P99: 5500}, AddedMS: 100, Ratio: 5600.0 / 5500},
		},
		Throughput: &ThroughputResult{Tasks: 200, Clients: 20, TaskWall: []float64{60}, BareWall: []float64{55}, TaskP50: 60, BareP50: 55, Ratio: 60.0 / 55,
			DevCPUMS: 120, BareCPUMS: 340},
		API: &APIResult{Seeded: 100000, Create: Dist{N: 10, P50: 10.5, P99: 20}, StartWF: Dist{N: 10, P50: 10, P99: 15},
			Floor: Dist{N: 10, P50: 0.1, P99: 0.3}, Reads: []ReadLatency{{Name: "GET /tasks/{id}", Dist: Dist{N: 10, P50: 1, P99: 30}, TargetMS: 25}},
			RPS: 4000, FloorRPS: 20000},
		Memory:     &MemoryResult{IdleMiB: 180, PeakMiB: 300},
		PolicyEval: &PolicyEvalResult{Modules: 20, PlanResources: 50, Check: Dist{N: 500, P50: 3, P99: 6}, Parse: Dist{N: 500, P50: 1, P99: 2}},
		PolicyTask: &PolicyTaskResult{Policies: 20, Task: Dist{N: 15, P50: 450, P99: 500}, Base: Dist{N: 15, P50: 440, P99: 480}, Ratio: 450.0 / 440, AddedMS: 10},
	}
	rows := BuildRows(res)
	met := map[string]bool{}
	for _, r := range rows {
		if r.Met != nil {
			met[r.ID] = *r.Met
		}
	}
	want := map[string]bool{"1.1": true, "1.2": false, "1.3": true, "1.4": false, "2": true, "2.1": false,
		"3.1": false, "3.2": false, "4.1": false, "4.2": true, "6.1": false, "6.2": true}
	for id, w := range want {
		if got, ok := met[id]; !ok || got != w {
			t.Errorf("row %s met = %v (present %v), want %v", id, got, ok, w)
		}
	}
	table := Table(rows)
	for _, s := range []string{"| 1.1 | Task POST → completed, 1 resource", "0.97× (-10 ms)", "1.18× (+70 ms)", "| 2 | Throughput: 200 tasks",
		"same mirror", "| 2.1 | CPU of terratask dev", "| 4.2 |", "4,000 req/s", "| 6.1 | Policy evaluation: 20 modules, 50-resource plan",
		"3.00× p99 (+4.00 ms)", "| 6.2 | Task POST → completed, 1 resource, 20 policies", "1.02× (+10 ms)"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestQuickSmoke runs the smallest pieces of the quick mode for real: it
// builds terratask, starts `terratask dev`, measures one one-resource task
// against one bare script run, and renders the table. About 30-60 s.
func TestQuickSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts terratask dev and runs terraform")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform is not on PATH")
	}
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(true)
	cfg.Root, cfg.WorkDir, cfg.Log = root, t.TempDir(), testLog{t}
	cfg.Phases = map[string]bool{PhaseOverhead: true}
	cfg.Resources, cfg.OverheadRuns = []int{1}, 1
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		if res != nil {
			t.Fatalf("%v: %v", err, res.Notes)
		}
		t.Fatal(err)
	}
	if len(res.Overhead) != 1 || res.Overhead[0].Task.N != 1 || res.Overhead[0].Bare.N != 1 || res.Overhead[0].Task.P50 <= 0 || res.Overhead[0].Bare.P50 <= 0 {
		t.Fatalf("overhead = %+v", res.Overhead)
	}
	if res.Memory == nil || res.Memory.IdleMiB <= 0 {
		t.Fatalf("memory = %+v", res.Memory)
	}
	table := Table(res.Rows)
	if !strings.Contains(table, "| 1.1 | Task POST → completed, 1 resource") || !strings.Contains(table, "| 4.1 | RSS") {
		t.Fatalf("table:\n%s", table)
	}
	t.Logf("\n%s", table)
}

// TestELFResolver names a function of a small Go binary from its address
// relative to the binary's first segment, as perf prints an address it
// could not resolve.
func TestELFResolver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hi")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var addr uint64
	for _, s := range syms {
		if s.Name == "main.main" {
			addr = s.Value
		}
	}
	resolve, err := elfResolver(bin)
	if err != nil || addr == 0 {
		t.Fatalf("elfResolver: %v (main.main at %#x)", err, addr)
	}
	if got := resolve(addr + 4 - 0x400000); got != "main.main" {
		t.Fatalf("resolve of main.main's relative address = %q", got)
	}
}

// syntheticPlan is `terraform show -json` of ResourcesFixture(n)'s plan,
// as Terraform 1.11 prints it, for tests without terraform.
func syntheticPlan(n int) []byte {
	var planned, changes, config, refs []any
	for i := range n {
		addr := fmt.Sprintf("terraform_data.r%d", i)
		base := map[string]any{"address": addr, "mode": "managed", "type": "terraform_data", "name": fmt.Sprintf("r%d", i)}
		after := map[string]any{"input": fmt.Sprintf("item-%d", i), "triggers_replace": nil}
		p := maps.Clone(base)
		p["provider_name"], p["schema_version"], p["values"], p["sensitive_values"] = "terraform.io/builtin/terraform", 0, after, map[string]any{}
		planned = append(planned, p)
		c := maps.Clone(base)
		c["provider_name"] = "terraform.io/builtin/terraform"
		c["change"] = map[string]any{"actions": []string{"create"}, "before": nil, "after": after,
			"after_unknown": map[string]any{"id": true, "output": true}, "before_sensitive": false, "after_sensitive": map[string]any{}}
		changes = append(changes, c)
		k := maps.Clone(base)
		k["provider_config_key"], k["schema_version"] = "terraform", 0
		k["expressions"] = map[string]any{"input": map[string]any{"constant_value": fmt.Sprintf("item-%d", i)}}
		config = append(config, k)
		refs = append(refs, addr+".id", addr)
	}
	b, _ := json.Marshal(map[string]any{
		"format_version": "1.2", "terraform_version": "1.11.4",
		"planned_values":   map[string]any{"outputs": map[string]any{"ids": map[string]any{"sensitive": false}}, "root_module": map[string]any{"resources": planned}},
		"resource_changes": changes,
		"output_changes": map[string]any{"ids": map[string]any{"actions": []string{"create"}, "before": nil, "after": make([]any, n),
			"after_unknown": slices.Repeat([]any{true}, n), "before_sensitive": false, "after_sensitive": false}},
		"configuration": map[string]any{
			"provider_config": map[string]any{"terraform": map[string]any{"name": "terraform", "full_name": "terraform.io/builtin/terraform"}},
			"root_module": map[string]any{"outputs": map[string]any{"ids": map[string]any{"expression": map[string]any{"references": refs}}},
				"resources": config}},
		"timestamp": "2026-12-07T18:00:00Z", "applyable": true, "complete": true, "errored": false,
	})
	return b
}

// TestPolicySet compiles the policy rows' 20 modules and evaluates them on
// both benchmark plans: none denies or asks for approval; on the
// 50-resource plan two warn, on the one-resource plan none.
func TestPolicySet(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := PolicySet(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 20 {
		t.Fatalf("%d modules, want 20", len(mods))
	}
	set, err := policy.Compile(mods)
	if err != nil {
		t.Fatal(err)
	}
	if !set.ReadsPlan() {
		t.Fatal("the set does not read the plan")
	}
	for n, warns := range map[int]int{1: 0, 50: 2} {
		f := ResourcesFixture(n)
		in := policyInput(f)
		pre, err := policy.PrePlanInput(policy.NewDoc(in, task.PolicyPrePlan, nil, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if c := set.Eval(context.Background(), task.PolicyPrePlan, pre); c.Decision != task.PolicyAllow || len(c.Results) != 0 {
			t.Errorf("%d resources, pre_plan: %s %s %+v", n, c.Decision, c.Error, c.Results)
		}
		post, err := policy.PostPlanInput(syntheticPlan(n), policy.NewDoc(in, task.PolicyPostPlan, nil, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		c := set.Eval(context.Background(), task.PolicyPostPlan, post)
		if c.Decision != task.PolicyAllow || len(c.Results) != warns {
			t.Errorf("%d resources, post_plan: %s %s %+v", n, c.Decision, c.Error, c.Results)
		}
		for _, r := range c.Results {
			t.Logf("%d resources: %s %s: %s", n, r.Rule, r.Policy, r.Message)
		}
	}
	// Each generated module fires when its condition holds: one plan
	// that breaks every rule (a deleted IAM user of a foreign provider in
	// workspace prod, badly named and tagged, a secret output).
	bad := []byte(`{"resource_changes": [
	  {"address": "aws_iam_user.Bad-Name", "mode": "managed", "type": "aws_iam_user", "name": "Bad-Name", "provider_name": "registry.example.com/acme/aws",
	   "change": {"actions": ["update"], "after": {"tags": {"environment": "qa", "stage": "x", "cost_center": "nope"}}, "after_unknown": {}}},
	  {"address": "aws_db_instance.main", "mode": "managed", "type": "aws_db_instance", "name": "main", "provider_name": "registry.terraform.io/hashicorp/aws",
	   "change": {"actions": ["delete"], "before": {}, "after": null, "after_unknown": {}}}],
	 "output_changes": {"db_password": {"actions": ["create"], "after_sensitive": false}},
	 "configuration": {"root_module": {"resources": [{"address": "aws_iam_user.Bad-Name", "mode": "managed", "provisioners": [{"type": "remote-exec"}]}],
	   "variables": {"region": {}}}}}`)
	in := policyInput(ResourcesFixture(1))
	in.Params.Workspace = "prod"
	post, err := policy.PostPlanInput(bad, policy.NewDoc(in, task.PolicyPostPlan, nil, time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	c := set.Eval(context.Background(), task.PolicyPostPlan, post)
	fired := map[string]bool{}
	for _, r := range c.Results {
		fired[r.Policy+" "+r.Rule] = true
	}
	for _, want := range []string{"bench_types_providers_a deny", "bench_types_providers_b deny", "bench_tag_values_a deny", "bench_tag_values_b deny",
		"bench_naming_a deny", "bench_naming_b deny", "bench_protected_a require_approval", "bench_agent_guard_a deny", "bench_agent_guard_a require_approval",
		"bench_config_hygiene_a deny", "bench_config_hygiene_a warn"} {
		if !fired[want] {
			t.Errorf("%s did not fire; results: %+v (%s)", want, c.Results, c.Error)
		}
	}
}

// TestSegmentRows puts the segments only a later breakdown has where they
// follow in it.
func TestSegmentRows(t *testing.T) {
	seg := func(from, to string) Segment { return Segment{From: from, To: to} }
	bds := []BreakdownResult{
		{Segments: []Segment{seg("a", "b"), seg("b", "c"), seg("c", "d")}},
		{Segments: []Segment{seg("a", "b"), seg("b", "x"), seg("x", "c"), seg("c", "d"), seg("d", "e")}},
	}
	var got []string
	for _, s := range segmentRows(bds) {
		got = append(got, s.From+s.To)
	}
	if want := []string{"ab", "bx", "xc", "bc", "cd", "de"}; !slices.Equal(got, want) {
		t.Fatalf("segmentRows = %v, want %v", got, want)
	}
}

// BenchmarkPolicyCheck is row 6.1's check (PostPlanInput and Eval of the
// 20 modules) on the synthetic 50-resource plan, for -benchmem and
// -cpuprofile.
func BenchmarkPolicyCheck(b *testing.B) {
	root, err := ModuleRoot(".")
	if err != nil {
		b.Fatal(err)
	}
	mods, err := PolicySet(root)
	if err != nil {
		b.Fatal(err)
	}
	set, err := policy.Compile(mods)
	if err != nil {
		b.Fatal(err)
	}
	plan := syntheticPlan(50)
	in := policyInput(ResourcesFixture(50))
	b.ResetTimer()
	for range b.N {
		input, err := policy.PostPlanInput(plan, policy.NewDoc(in, task.PolicyPostPlan, nil, time.Now()))
		if err != nil {
			b.Fatal(err)
		}
		if c := set.Eval(context.Background(), task.PolicyPostPlan, input); c.Decision != task.PolicyAllow {
			b.Fatalf("decision %s: %s", c.Decision, c.Error)
		}
	}
}
