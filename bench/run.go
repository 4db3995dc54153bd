// Package bench measures terratask against bare Terraform and bare Temporal:
// the overhead a task adds to the terraform commands it runs, throughput of
// many tasks on one runner, API latency and memory. cmd/terratask-bench runs
// it; README.md beside this file explains the figures and what holds them
// back.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Phase names, for Config.Phases.
const (
	PhaseOverhead   = "overhead"
	PhaseProvider   = "provider"
	PhaseSlow       = "slow"
	PhaseThroughput = "throughput"
	PhaseAPI        = "api"
	PhaseCreate     = "create"
	PhaseBreakdown  = "breakdown"
	PhaseProfile    = "profile"
	PhaseSandbox    = "sandbox"
	PhasePolicy     = "policy"
)

// AllPhases lists every phase in run order.
var AllPhases = []string{PhaseSandbox, PhaseOverhead, PhaseProvider, PhaseSlow, PhaseThroughput, PhaseAPI, PhaseCreate, PhaseProfile, PhasePolicy, PhaseBreakdown}

// Config sizes a run.
type Config struct {
	Quick bool
	// Root is the module root (it builds ./cmd/terratask there).
	Root string
	// Bin is a prebuilt terratask binary; "" builds one into the work dir.
	Bin string
	// WorkDir holds data dirs, the binary and bare runs; "" is a new temp
	// dir, removed at the end unless Keep.
	WorkDir string
	Keep    bool

	Resources      []int // fixtures of item 1
	OverheadRuns   int   // samples per small fixture
	SlowSteps      int   // the ~5 s apply: steps x SlowSecs
	SlowSecs       int
	SlowRuns       int
	Tasks          int // item 2
	Clients        int
	ThroughputRuns int
	// ThroughputBudget stops starting throughput runs (after the first)
	// once another would end past it; 0 means no limit.
	ThroughputBudget time.Duration
	SeedTasks        int // item 3
	SeedLogs         int
	LatencySamples   int
	// LatencyBudget caps the time of one read route's samples (at least
	// 200 are taken).
	LatencyBudget time.Duration
	CreateSamples int
	RPSClients    int
	RPSDuration   time.Duration
	BreakdownRuns int
	// ProfileTasks is the burst profiled with perf (0 skips).
	ProfileTasks int
	// PolicyEvals are row 6.1's evaluations (each beside a parse of the
	// plan alone); PolicyRuns row 6.2's pairs of tasks.
	PolicyEvals int
	PolicyRuns  int
	// Poll is the status polling interval of item 1 (10 ms).
	Poll time.Duration
	// Phases to run; nil runs all.
	Phases map[string]bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultConfig is the full run (quick false) or the smoke run.
func DefaultConfig(quick bool) Config {
	c := Config{
		Quick: quick, Resources: []int{1, 5, 50}, OverheadRuns: 9, SlowSteps: 5, SlowSecs: 1, SlowRuns: 3,
		Tasks: 200, Clients: 20, ThroughputRuns: 3, ThroughputBudget: 6 * time.Minute, SeedTasks: 100_000, SeedLogs: 100_000,
		LatencySamples: 2000, LatencyBudget: 15 * time.Second, CreateSamples: 300, RPSClients: 50, RPSDuration: 5 * time.Second,
		BreakdownRuns: 5, ProfileTasks: 40, PolicyEvals: 500, PolicyRuns: 15, Poll: 10 * time.Millisecond,
	}
	if quick {
		c.OverheadRuns, c.SlowRuns = 3, 1
		c.Tasks, c.ThroughputRuns = 30, 1
		c.LatencySamples, c.LatencyBudget, c.CreateSamples = 300, 5*time.Second, 50
		c.RPSDuration = 2 * time.Second
		c.BreakdownRuns, c.ProfileTasks = 2, 10
		c.PolicyEvals, c.PolicyRuns = 100, 4
	}
	return c
}

func (c Config) on(phase string) bool { return c.Phases == nil || c.Phases[phase] }

// runner is one run in progress.
type runner struct {
	cfg  Config
	res  *Results
	work string
	bin  string
	bare *Bare
	key  string
	dev  *Dev
	c    *Client
	seed Seeded
	// devEnv is added to the environment of every dev the run starts.
	devEnv []string
	// failed is set when a phase failed; the run goes on.
	failed bool
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// ownCPU is the CPU time of the benchmark's processes: this one, the
// children it has waited for (bare scripts, stopped devs) and the running
// dev with its terraform children.
func (r *runner) ownCPU() time.Duration {
	own := selfAndChildrenCPU()
	if r.dev != nil && !r.dev.Exited() {
		if c, err := ProcCPU(r.dev.PID()); err == nil {
			own += c.Self + c.Children
		}
	}
	return own
}

// loadMark is a point to measure other processes' CPU use from.
type loadMark struct {
	at         time.Time
	busy, mine time.Duration
}

func (r *runner) markLoad() loadMark {
	busy, _ := MachineBusy()
	return loadMark{at: time.Now(), busy: busy, mine: r.ownCPU()}
}

// otherLoad is the share of the machine's CPU that processes outside the
// benchmark used since m, in percent.
func (r *runner) otherLoad(m loadMark) PhaseLoad {
	now := r.markLoad()
	wall := now.at.Sub(m.at)
	other := (now.busy - m.busy) - (now.mine - m.mine)
	pct := 0.0
	if wall > 0 {
		pct = 100 * float64(max(other, 0)) / float64(wall*time.Duration(runtime.NumCPU()))
	}
	return PhaseLoad{Seconds: wall.Seconds(), OtherCPUPct: pct}
}

// phase runs fn, recording a failure as a note, and how busy the rest of
// the machine was meanwhile.
func (r *runner) phase(name string, fn func() error) {
	r.logf("%s: start", name)
	start := time.Now()
	mark := r.markLoad()
	defer func() {
		l := r.otherLoad(mark)
		l.Phase = name
		r.res.Load = append(r.res.Load, l)
		r.logf("%s: other processes used %.0f%% of the machine's CPU", name, l.OtherCPUPct)
	}()
	if err := fn(); err != nil {
		r.failed = true
		msg := fmt.Sprintf("phase %s failed: %v", name, err)
		r.res.Notes = append(r.res.Notes, firstLines(msg, 12))
		r.logf("%s", msg)
		return
	}
	r.logf("%s: done in %s", name, time.Since(start).Round(100*time.Millisecond))
}

// ErrPhases is returned (with the results) when a phase failed.
var ErrPhases = errors.New("some benchmark phases failed; see the notes")

// Run runs the benchmark. It returns the results even when a phase failed
// (with ErrPhases).
func Run(ctx context.Context, cfg Config) (*Results, error) {
	start := time.Now()
	res := &Results{Date: start.UTC(), Quick: cfg.Quick, Machine: machine(cfg.Root), Settings: settingsOf(cfg)}
	r := &runner{cfg: cfg, res: res, key: "bench-" + randHex(12)}
	whole := r.markLoad()

	work := cfg.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "terratask-bench-")
		if err != nil {
			return nil, err
		}
		work = d
		if cfg.Keep {
			r.logf("work dir %s (kept)", d)
		} else {
			defer os.RemoveAll(d)
		}
	}
	r.work = work

	r.bin = cfg.Bin
	if r.bin == "" {
		r.logf("building terratask (go build -o %s/terratask ./cmd/terratask)", work)
		t := time.Now()
		bin, err := BuildTerratask(ctx, cfg.Root, work)
		if err != nil {
			return nil, err
		}
		r.bin = bin
		r.logf("built in %s", time.Since(t).Round(100*time.Millisecond))
	}
	bare, err := NewBare(ctx, work)
	if err != nil {
		return nil, err
	}
	r.bare = bare
	res.Machine.Terraform = bare.Terraform
	if cfg.on(PhaseProvider) {
		r.logf("preparing the time provider's mirror (scripts/provider-mirror.sh)")
		xdg, err := ProviderMirror(ctx, cfg.Root, work)
		if err != nil {
			r.failed = true
			res.Notes = append(res.Notes, firstLines("the provider fixture is skipped: "+err.Error(), 12))
		} else {
			bare.XDGDataHome = xdg
			r.devEnv = append(r.devEnv, "XDG_DATA_HOME="+xdg)
		}
	}

	if cfg.on(PhaseSandbox) {
		r.phase("sandbox", func() error { return r.sandboxCost(ctx) })
	}

	needDev := cfg.on(PhaseOverhead) || cfg.on(PhaseProvider) || cfg.on(PhaseSlow) || cfg.on(PhaseThroughput) || cfg.on(PhaseAPI) ||
		cfg.on(PhaseCreate) || (cfg.on(PhaseProfile) && cfg.ProfileTasks > 0)
	if needDev {
		dataDir := work + "/dev"
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		if cfg.on(PhaseAPI) && cfg.SeedTasks > 0 {
			r.logf("seeding %d tasks and %d log entries into %s/terratask.db", cfg.SeedTasks, cfg.SeedLogs, dataDir)
			s, err := SeedStore(ctx, dataDir, cfg.SeedTasks, cfg.SeedLogs)
			if err != nil {
				return nil, err
			}
			r.seed = s
			r.logf("seeded in %s", s.Took.Round(100*time.Millisecond))
		}
		r.logf("starting terratask dev")
		dev, err := StartDev(DevOptions{Bin: r.bin, DataDir: dataDir, Key: r.key, Env: r.devEnv})
		if err != nil {
			return nil, err
		}
		r.dev = dev
		r.c = NewClient(dev.API, r.key, max(cfg.Clients, cfg.RPSClients))
		r.logf("terratask dev: API %s, Temporal %s, pid %d", dev.API, dev.Temporal, dev.PID())

		mem := &MemoryResult{}
		res.Memory = mem
		r.phase("memory (idle)", func() error { return r.idleRSS(ctx, mem) })
		if cfg.on(PhaseOverhead) || cfg.on(PhaseProvider) || cfg.on(PhaseSlow) {
			r.phase("overhead", func() error { return r.overheadAll(ctx) })
		}
		if cfg.on(PhaseThroughput) {
			r.phase("throughput", func() error { return r.throughput(ctx, mem) })
		}
		if cfg.on(PhaseAPI) {
			r.phase("api reads", func() error { return r.apiReads(ctx) })
		}
		if cfg.on(PhaseCreate) {
			r.phase("create latency", func() error { return r.createLatency(ctx) })
		}
		if cfg.on(PhaseProfile) && cfg.ProfileTasks > 0 {
			r.phase("profile", func() error { return r.profile(ctx) })
		}
		if dev.Exited() {
			r.failed = true
			res.Notes = append(res.Notes, "terratask dev exited during the run:\n"+tail(dev.Output(), 2000))
		} else if err := dev.Stop(); err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("stopping terratask dev: %v", err))
		}
	}
	if cfg.on(PhasePolicy) && cfg.PolicyRuns > 0 {
		r.phase("policy", func() error { return r.policyPhase(ctx) })
	}
	if cfg.on(PhaseBreakdown) && cfg.BreakdownRuns > 0 {
		r.phase("breakdown", func() error { return r.breakdown(ctx) })
	}
	res.Seconds = time.Since(start).Seconds()
	l := r.otherLoad(whole)
	l.Phase = "whole run"
	res.Load = append(res.Load, l)
	if l.OtherCPUPct > 10 {
		res.Notes = append(res.Notes, fmt.Sprintf("other processes used %.0f%% of the machine's CPU during the run: absolute times are inflated and noisier; ratios (task and baseline measured alternately) suffer less", l.OtherCPUPct))
	}
	res.Rows = BuildRows(res)
	if r.failed {
		return res, ErrPhases
	}
	return res, nil
}

// idleRSS waits for dev's RSS to settle after start and records it.
func (r *runner) idleRSS(ctx context.Context, mem *MemoryResult) error {
	pid := r.dev.PID()
	deadline := time.Now().Add(20 * time.Second)
	var prev, cur float64
	stable := 0
	time.Sleep(2 * time.Second)
	for {
		v, err := RSSMiB(pid)
		if err != nil {
			return err
		}
		prev, cur = cur, v
		if prev > 0 && abs(cur-prev) < 0.5 {
			stable++
		} else {
			stable = 0
		}
		if stable >= 3 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	mem.IdleMiB = cur
	r.logf("idle RSS %.0f MiB", cur)
	return nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func settingsOf(c Config) Settings {
	return Settings{
		OverheadRuns: c.OverheadRuns, SlowRuns: c.SlowRuns, Resources: c.Resources,
		Slow:  fmt.Sprintf("%d x %d s", c.SlowSteps, c.SlowSecs),
		Tasks: c.Tasks, Clients: c.Clients, ThroughputRuns: c.ThroughputRuns,
		SeedTasks: c.SeedTasks, SeedLogs: c.SeedLogs, LatencySamples: c.LatencySamples,
		CreateSamples: c.CreateSamples, RPSClients: c.RPSClients, RPSSeconds: c.RPSDuration.Seconds(),
		BreakdownRuns: c.BreakdownRuns, ProfileTasks: c.ProfileTasks, PolicyEvals: c.PolicyEvals, PolicyRuns: c.PolicyRuns,
		PollMillis: ms(c.Poll),
	}
}

func machine(root string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version()}
	if root != "" {
		cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
		cmd.Dir = root
		if out, err := cmd.Output(); err == nil {
			m.Commit = strings.TrimSpace(string(out))
		}
	}
	return m
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}
