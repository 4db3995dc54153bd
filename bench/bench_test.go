package bench

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		Memory: &MemoryResult{IdleMiB: 180, PeakMiB: 300},
	}
	rows := BuildRows(res)
	met := map[string]bool{}
	for _, r := range rows {
		if r.Met != nil {
			met[r.ID] = *r.Met
		}
	}
	want := map[string]bool{"1.1": true, "1.2": false, "1.3": true, "1.4": false, "2": true, "2.1": false,
		"3.1": false, "3.2": false, "4.1": false, "4.2": true}
	for id, w := range want {
		if got, ok := met[id]; !ok || got != w {
			t.Errorf("row %s met = %v (present %v), want %v", id, got, ok, w)
		}
	}
	table := Table(rows)
	for _, s := range []string{"| 1.1 | Task POST → completed, 1 resource", "0.97× (-10 ms)", "1.18× (+70 ms)", "| 2 | Throughput: 200 tasks",
		"same mirror", "| 2.1 | CPU of terratask dev", "| 4.2 |", "4,000 req/s"} {
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
