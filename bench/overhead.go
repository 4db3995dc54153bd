package bench

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// taskOnce creates a task of f and polls its status every cfg.Poll until it
// is terminal: POST to completed as a client sees it.
func (r *runner) taskOnce(ctx context.Context, f Fixture, agent string) (time.Duration, string, error) {
	return r.taskPolled(ctx, f, agent, r.cfg.Poll)
}

// taskPolled is taskOnce polling every poll.
func (r *runner) taskPolled(ctx context.Context, f Fixture, agent string, poll time.Duration) (time.Duration, string, error) {
	return r.taskVia(ctx, r.c, f, agent, poll)
}

// taskVia is taskPolled through the client c (its key, its org).
func (r *runner) taskVia(ctx context.Context, c *Client, f Fixture, agent string, poll time.Duration) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	body := CreateBody(TaskParams{Name: "bench " + f.Name, AgentID: agent, RunnerID: "local",
		Files: f.Files, Parallelism: f.Parallelism, Workspace: f.Workspace, Variables: f.Vars})
	start := time.Now()
	id, err := c.Create(ctx, body)
	if err != nil {
		return 0, "", err
	}
	st, err := c.WaitTerminal(ctx, id, poll)
	took := time.Since(start)
	if err != nil {
		return 0, id, err
	}
	if st != "completed" {
		return 0, id, fmt.Errorf("task %s (%s) ended %s%s", id, f.Name, st, logTail(ctx, c, id))
	}
	return took, id, nil
}

// logTail is the last lines of a task's log, for errors.
func logTail(ctx context.Context, c *Client, id string) string {
	logs, err := c.Logs(ctx, id)
	if err != nil || len(logs) == 0 {
		return ""
	}
	s := "; last log lines:"
	for _, l := range logs[max(0, len(logs)-8):] {
		s += "\n  " + l.Level + " " + l.Message
	}
	return s
}

// overheadAll runs item 1 for every fixture, after three warm-up tasks and
// bare runs (the first task of a process finds terraform on PATH, the first
// terraform runs warm the page cache, a new process's caches are cold).
func (r *runner) overheadAll(ctx context.Context) error {
	warm := ResourcesFixture(1)
	for range 3 {
		if _, _, err := r.taskOnce(ctx, warm, "bench-warmup"); err != nil {
			return fmt.Errorf("warm-up task: %w", err)
		}
		if _, err := r.bare.Run(ctx, warm); err != nil {
			return fmt.Errorf("warm-up bare run: %w", err)
		}
	}
	type fixtureRun struct {
		f    Fixture
		n    int
		runs int
		// agent creates the fixture's tasks ("": one of its own); a
		// fixture whose tasks share a workspace keeps the agent of its
		// warm-ups, which owns the workspace.
		agent string
	}
	var fixtures []fixtureRun
	if r.cfg.on(PhaseOverhead) {
		for _, n := range r.cfg.Resources {
			fixtures = append(fixtures, fixtureRun{ResourcesFixture(n), n, r.cfg.OverheadRuns, ""})
		}
	}
	if r.cfg.on(PhaseProvider) && r.bare.XDGDataHome != "" {
		// A runner that ran the workspace before: its first tasks init
		// for real (not measured).
		p := ProviderFixture()
		agent := "bench-overhead-" + randHex(4)
		for range 2 {
			if _, _, err := r.taskOnce(ctx, p.forRun(), agent); err != nil {
				return fmt.Errorf("warm-up task of %s: %w", p.Name, err)
			}
		}
		if _, err := r.bare.Run(ctx, p.forRun()); err != nil {
			return fmt.Errorf("warm-up bare run of %s: %w", p.Name, err)
		}
		fixtures = append(fixtures, fixtureRun{p, 0, r.cfg.OverheadRuns, agent})
	}
	if r.cfg.on(PhaseSlow) && r.cfg.SlowRuns > 0 {
		fixtures = append(fixtures, fixtureRun{SlowFixture(r.cfg.SlowSteps, r.cfg.SlowSecs), 0, r.cfg.SlowRuns, ""})
	}
	for _, fx := range fixtures {
		o, err := r.overhead(ctx, fx.f, fx.n, fx.runs, fx.agent)
		if err != nil {
			return fmt.Errorf("%s: %w", fx.f.Name, err)
		}
		r.res.Overhead = append(r.res.Overhead, o)
		r.logf("  %-32s task p50 %7.0f ms  bare p50 %7.0f ms  added %+6.0f ms  ratio %.2f", fx.f.Name, o.Task.P50, o.Bare.P50, o.AddedMS, o.Ratio)
	}
	return nil
}

// overhead measures one fixture: runs tasks (of agent, or of an agent of
// their own) and bare runs, alternating.
func (r *runner) overhead(ctx context.Context, f Fixture, resources, runs int, agent string) (OverheadResult, error) {
	pid := r.dev.PID()
	var tasks, bares []time.Duration
	var devCPU CPUTimes
	var bareCPU time.Duration
	steps := map[string][]float64{}
	if agent == "" {
		agent = "bench-overhead-" + randHex(4)
	}
	for i := range runs {
		c0, err := ProcCPU(pid)
		if err != nil {
			return OverheadResult{}, err
		}
		d, _, err := r.taskOnce(ctx, f.forRun(), agent)
		if err != nil {
			return OverheadResult{}, err
		}
		c1, err := ProcCPU(pid)
		if err != nil {
			return OverheadResult{}, err
		}
		delta := c1.Sub(c0)
		devCPU.Self += delta.Self
		devCPU.Children += delta.Children
		tasks = append(tasks, d)

		b, err := r.bare.Run(ctx, f.forRun())
		if err != nil {
			return OverheadResult{}, err
		}
		bares = append(bares, b.Wall)
		bareCPU += b.CPU
		for k, v := range b.Steps {
			steps[k] = append(steps[k], ms(v))
		}
		r.logf("  %s run %d/%d: task %s, bare %s", f.Name, i+1, runs, d.Round(time.Millisecond), b.Wall.Round(time.Millisecond))
	}
	o := OverheadResult{Fixture: f.Name, Resources: resources, Provider: f.Provider, Task: Summarise(tasks), Bare: Summarise(bares),
		BareSteps:      map[string]float64{},
		DevCPUMS:       ms(devCPU.Self) / float64(runs),
		TerraformCPUMS: ms(devCPU.Children) / float64(runs),
		BareCPUMS:      ms(bareCPU) / float64(runs),
	}
	o.AddedMS = o.Task.P50 - o.Bare.P50
	if o.Bare.P50 > 0 {
		o.Ratio = o.Task.P50 / o.Bare.P50
	}
	for k, v := range steps {
		o.BareSteps[k] = Median(v)
	}
	return o, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
