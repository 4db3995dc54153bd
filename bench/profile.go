package bench

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProfileResult is where terratask dev's own CPU goes while it runs a burst
// of tasks, from a `perf record` of the process (nothing is added to the
// binary: Go keeps frame pointers, so perf walks its stacks).
type ProfileResult struct {
	Tasks   int     `json:"tasks"`
	Samples int     `json:"samples"`
	Seconds float64 `json:"seconds"`
	// DevCPUMS is dev's own CPU per task during the burst.
	DevCPUMS float64 `json:"dev_cpu_per_task_ms"`
	// ByOwner attributes each sample to the nearest frame (from the leaf)
	// of terratask's code, the Temporal SDK or a Temporal service; samples
	// with none go to the Go runtime, the kernel or a library.
	ByOwner []Share `json:"by_owner"`
	// ByFunction is the same attribution by the owner frame's function.
	ByFunction []Share `json:"by_function"`
	// ByPackage is self time by the leaf frame's module or std package.
	ByPackage []Share `json:"by_package"`
}

// Share is a part of the samples, in percent.
type Share struct {
	Name string  `json:"name"`
	Pct  float64 `json:"pct"`
}

// profile records dev with perf while a burst of tasks runs.
func (r *runner) profile(ctx context.Context) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		r.res.Notes = append(r.res.Notes, "perf is not on PATH: no CPU profile of terratask dev (apt-get install linux-perf)")
		return nil
	}
	data := filepath.Join(r.work, "perf.data")
	pid := r.dev.PID()
	rec := exec.CommandContext(ctx, perf, "record", "-e", "cpu-clock", "-F", "199", "-g", "-p", strconv.Itoa(pid), "-o", data)
	var recOut strings.Builder
	rec.Stdout, rec.Stderr = &recOut, &recOut
	if err := rec.Start(); err != nil {
		return fmt.Errorf("perf record: %v", err)
	}
	time.Sleep(time.Second) // let perf attach
	n := r.cfg.ProfileTasks
	f := ResourcesFixture(1)
	agent := "bench-profile-" + randHex(3)
	c0, _ := ProcCPU(pid)
	start := time.Now()
	_, _, _, runErr := r.throughputOnce(ctx, CreateBody(TaskParams{Name: "bench profile", AgentID: agent, RunnerID: "local", Files: f.Files}), agent, n, min(n, r.cfg.Clients))
	took := time.Since(start)
	c1, _ := ProcCPU(pid)
	_ = rec.Process.Signal(syscall.SIGINT)
	recErr := rec.Wait()
	if runErr != nil {
		return runErr
	}
	if recErr != nil {
		if _, err := os.Stat(data); err != nil {
			return fmt.Errorf("perf record: %v\n%s", recErr, tail(recOut.String(), 1000))
		}
	}
	script := exec.CommandContext(ctx, perf, "script", "-i", data, "-F", "comm,tid,ip,sym")
	out, err := script.StdoutPipe()
	if err != nil {
		return err
	}
	script.Stderr = io.Discard
	if err := script.Start(); err != nil {
		return fmt.Errorf("perf script: %v", err)
	}
	// perf may fail to read the symbols of a binary this large ("cannot get
	// elf header"): frames it leaves unknown are resolved here from the
	// binary's symbol table.
	resolve, rerr := elfResolver(r.bin)
	if rerr != nil {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("profile: reading the symbols of %s: %v", r.bin, rerr))
	}
	p, perr := parsePerfScript(out, resolve)
	if err := script.Wait(); err != nil && perr == nil {
		perr = fmt.Errorf("perf script: %v", err)
	}
	if perr != nil {
		return perr
	}
	p.Tasks, p.Seconds = n, took.Seconds()
	p.DevCPUMS = ms(c1.Sub(c0).Self) / float64(n)
	r.res.Profile = p
	r.logf("  %d samples over %d tasks; dev CPU per task %.0f ms", p.Samples, n, p.DevCPUMS)
	for _, s := range p.ByOwner[:min(6, len(p.ByOwner))] {
		r.logf("    %5.1f%% %s", s.Pct, s.Name)
	}
	return nil
}

// elfResolver returns a function that names the function of an address in
// the Go binary at path, given as perf prints a frame it could not resolve:
// relative to the binary's first loadable segment.
func elfResolver(path string) (func(ip uint64) string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	type sym struct {
		addr, size uint64
		name       string
	}
	var funcs []sym
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			funcs = append(funcs, sym{s.Value, s.Size, s.Name})
		}
	}
	sort.Slice(funcs, func(i, j int) bool { return funcs[i].addr < funcs[j].addr })
	base := uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			base = p.Vaddr - p.Off
			break
		}
	}
	lookup := func(a uint64) (string, bool) {
		i := sort.Search(len(funcs), func(i int) bool { return funcs[i].addr > a }) - 1
		if i < 0 || (funcs[i].size > 0 && a >= funcs[i].addr+funcs[i].size) {
			return "", false
		}
		return funcs[i].name, true
	}
	return func(ip uint64) string {
		if name, ok := lookup(ip + base); ok {
			return name
		}
		return "[unknown]"
	}, nil
}

// parsePerfScript reads `perf script -F comm,tid,ip,sym` output: a header
// line per sample, then its stack, leaf first, one frame a line. Frames
// perf left unknown go through resolve, when given.
func parsePerfScript(rd io.Reader, resolve func(ip uint64) string) (*ProfileResult, error) {
	owners, funcs, pkgs := map[string]int{}, map[string]int{}, map[string]int{}
	samples := 0
	var stack []string
	mine := false
	flush := func() {
		if len(stack) == 0 || !mine {
			stack = stack[:0]
			return
		}
		samples++
		owner, fn := ownerOf(stack)
		owners[owner]++
		funcs[fn]++
		pkgs[packageGroup(stack[0])]++
		stack = stack[:0]
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			// A sample's header: "comm tid". perf follows the children
			// dev forks (terraform) too; only dev's own threads count.
			flush()
			mine = strings.HasPrefix(line, "terratask ")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			stack = append(stack, "[unknown]")
			continue
		}
		sym := f[1]
		switch {
		case strings.HasPrefix(f[0], "ffffffff"):
			sym = "[kernel]"
		case sym == "[unknown]" && resolve != nil:
			if ip, err := strconv.ParseUint(f[0], 16, 64); err == nil {
				sym = resolve(ip)
			}
		}
		stack = append(stack, sym)
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if samples == 0 {
		return nil, fmt.Errorf("perf recorded no samples of terratask dev")
	}
	return &ProfileResult{Samples: samples, ByOwner: shares(owners, samples, 0), ByFunction: shares(funcs, samples, 15),
		ByPackage: shares(pkgs, samples, 14)}, nil
}

func shares(m map[string]int, total, top int) []Share {
	out := make([]Share, 0, len(m))
	for k, v := range m {
		out = append(out, Share{Name: k, Pct: 100 * float64(v) / float64(total)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pct != out[j].Pct {
			return out[i].Pct > out[j].Pct
		}
		return out[i].Name < out[j].Name
	})
	if top > 0 && len(out) > top {
		rest := 0.0
		for _, s := range out[top:] {
			rest += s.Pct
		}
		out = append(out[:top], Share{Name: "(the rest)", Pct: rest})
	}
	return out
}

// symbolPackage is a Go symbol's package path ("runtime.mallocgc":
// "runtime"), or the symbol itself when it is not a Go symbol.
func symbolPackage(sym string) string {
	slash := strings.LastIndexByte(sym, '/')
	dot := strings.IndexByte(sym[slash+1:], '.')
	if dot < 0 {
		return sym
	}
	return sym[:slash+1+dot]
}

// packageGroup names the module (or std package) of a frame.
func packageGroup(sym string) string {
	if sym == "[kernel]" || sym == "[unknown]" {
		return sym
	}
	pkg := symbolPackage(sym)
	parts := strings.Split(pkg, "/")
	if !strings.Contains(parts[0], ".") {
		if parts[0] == "runtime" || parts[0] == "internal" {
			return "runtime (Go)"
		}
		return pkg // std
	}
	n := 2
	if parts[0] == "github.com" || parts[0] == "gitlab.com" {
		n = 3
	}
	if parts[0] == "go.temporal.io" && len(parts) > 1 && parts[1] == "server" {
		n = 3 // go.temporal.io/server/service, /common
	}
	return strings.Join(parts[:min(n, len(parts))], "/")
}

// ownerOf attributes a stack (leaf first) to the nearest frame of an
// application part: terratask's packages, the Temporal SDK or a Temporal
// server service. Libraries (SQLite, gRPC, protobuf, JSON) are charged to
// their caller. It also returns the owner frame's function (the owner when
// there is none).
func ownerOf(stack []string) (string, string) {
	for _, sym := range stack {
		if o := frameOwner(sym); o != "" {
			return o, shortSym(sym)
		}
	}
	o := fallbackOwner(stack)
	return o, o
}

// shortSym drops the module path of a symbol:
// "github.com/x/y/store/sqlite.(*Store).Get" is "sqlite.(*Store).Get".
func shortSym(sym string) string {
	return sym[strings.LastIndexByte(symbolPackage(sym), '/')+1:]
}

// frameOwner is the application part a frame belongs to, or "".
func frameOwner(sym string) string {
	{
		pkg := symbolPackage(sym)
		switch {
		case strings.HasPrefix(pkg, "github.com/terratask/terratask/"):
			part := strings.TrimPrefix(pkg, "github.com/terratask/terratask/")
			if !strings.HasPrefix(part, "internal/") {
				part = strings.SplitN(part, "/", 2)[0]
			}
			return "terratask: " + part
		case strings.HasPrefix(pkg, "go.temporal.io/sdk"):
			return "Temporal SDK (client, workers)"
		case strings.HasPrefix(pkg, "go.temporal.io/server/common/persistence"):
			return "Temporal server: persistence (SQLite)"
		case strings.HasPrefix(pkg, "go.temporal.io/server/service/"):
			svc := strings.SplitN(strings.TrimPrefix(pkg, "go.temporal.io/server/service/"), "/", 2)[0]
			return "Temporal server: " + svc
		case strings.HasPrefix(pkg, "go.temporal.io/server/"):
			parts := strings.SplitN(strings.TrimPrefix(pkg, "go.temporal.io/server/"), "/", 3)
			return "Temporal server: " + strings.Join(parts[:min(2, len(parts))], "/")
		case strings.HasPrefix(pkg, "github.com/temporalio/ui-server"):
			return "Temporal UI server"
		}
	}
	return ""
}

// fallbackOwner names a stack without an application frame.
func fallbackOwner(stack []string) string {
	for _, sym := range stack {
		if strings.HasPrefix(sym, "runtime.gcBgMarkWorker") {
			return "Go runtime: background GC"
		}
	}
	for _, sym := range stack {
		switch pkg := symbolPackage(sym); {
		case strings.HasPrefix(pkg, "google.golang.org/grpc"):
			return "gRPC transport (no owner frame)"
		case strings.HasPrefix(pkg, "modernc.org/sqlite"), pkg == "database/sql":
			return "SQLite (no owner frame)"
		case strings.HasPrefix(pkg, "net/http"), strings.HasPrefix(pkg, "github.com/gin-gonic/gin"):
			return "HTTP server (no owner frame)"
		}
	}
	switch leaf := stack[0]; {
	case leaf == "[kernel]":
		return "kernel (no owner frame)"
	case strings.HasPrefix(leaf, "runtime."):
		return "Go runtime: scheduler, other"
	}
	return "other"
}
