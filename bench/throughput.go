package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// sampler polls dev's RSS and its number of terraform children.
type sampler struct {
	stop    chan struct{}
	done    chan struct{}
	peakRSS float64
	peakTF  int
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := RSSMiB(pid); err == nil && v > s.peakRSS {
				s.peakRSS = v
			}
			if n := CountChildren(pid, "terraform"); n > s.peakTF {
				s.peakTF = n
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) Stop() { close(s.stop); <-s.done }

// throughput runs item 2: Tasks tasks created at once by Clients clients,
// wall time until all are completed, against the bare script run as many
// times by `xargs -P Clients`. It samples dev's RSS meanwhile (item 4).
func (r *runner) throughput(ctx context.Context, mem *MemoryResult) error {
	n, clients := r.cfg.Tasks, r.cfg.Clients
	f := ResourcesFixture(1)
	pid := r.dev.PID()
	t := &ThroughputResult{Tasks: n, Clients: clients}
	var devCPU, tfCPU, bareCPU []float64
	var lastIDs []string
	phaseStart := time.Now()
	for run := range r.cfg.ThroughputRuns {
		if run > 0 && r.cfg.ThroughputBudget > 0 {
			perRun := time.Since(phaseStart) / time.Duration(run)
			if time.Since(phaseStart)+perRun > r.cfg.ThroughputBudget {
				r.res.Notes = append(r.res.Notes, fmt.Sprintf("throughput: %d of %d runs: another run (about %s) would pass the phase's budget of %s",
					run, r.cfg.ThroughputRuns, perRun.Round(time.Second), r.cfg.ThroughputBudget))
				break
			}
		}
		agent := fmt.Sprintf("bench-tput-%s-%d", randHex(3), run)
		b := CreateBody(TaskParams{Name: "bench throughput", AgentID: agent, RunnerID: "local", Files: f.Files})
		c0, err := ProcCPU(pid)
		if err != nil {
			return err
		}
		smp := startSampler(pid, 100*time.Millisecond)
		wall, createWall, ids, err := r.throughputOnce(ctx, b, agent, n, clients)
		smp.Stop()
		if err != nil {
			return err
		}
		c1, err := ProcCPU(pid)
		if err != nil {
			return err
		}
		d := c1.Sub(c0)
		devCPU = append(devCPU, ms(d.Self)/float64(n))
		tfCPU = append(tfCPU, ms(d.Children)/float64(n))
		mem.PeakMiB = max(mem.PeakMiB, smp.peakRSS)
		t.PeakTerraform = max(t.PeakTerraform, smp.peakTF)
		lastIDs = ids

		bw, bcpu, err := r.bare.RunParallel(ctx, f, n, clients)
		if err != nil {
			return err
		}
		bareCPU = append(bareCPU, ms(bcpu)/float64(n))
		t.TaskWall = append(t.TaskWall, wall.Seconds())
		t.BareWall = append(t.BareWall, bw.Seconds())
		t.CreateWall = append(t.CreateWall, createWall.Seconds())
		r.logf("  run %d/%d: %d tasks in %s (created in %s, peak RSS %.0f MiB, peak %d terraform processes); xargs -P %d: %s",
			run+1, r.cfg.ThroughputRuns, n, wall.Round(10*time.Millisecond), createWall.Round(10*time.Millisecond),
			smp.peakRSS, smp.peakTF, clients, bw.Round(10*time.Millisecond))
	}
	if hwm, err := HWMMiB(pid); err == nil {
		mem.HWMMiB = hwm
	}
	t.TaskP50, t.BareP50 = Median(t.TaskWall), Median(t.BareWall)
	if t.BareP50 > 0 {
		t.Ratio = t.TaskP50 / t.BareP50
	}
	t.DevCPUMS, t.TerraformCPUMS, t.BareCPUMS = Median(devCPU), Median(tfCPU), Median(bareCPU)
	r.res.Throughput = t
	r.taskPhases(ctx, t, lastIDs, 10)
	return nil
}

// throughputOnce creates n tasks from clients goroutines and waits until the
// store counts all of them terminal. It asks every 500 ms: a count is a list
// query, whose cost on a big store would otherwise weigh on the run.
func (r *runner) throughputOnce(ctx context.Context, body []byte, agent string, n, clients int) (wall, createWall time.Duration, ids []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	jobs := make(chan int, n)
	for i := range n {
		jobs <- i
	}
	close(jobs)
	ids = make([]string, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				id, err := r.c.Create(ctx, body)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				ids[i] = id
			}
		}()
	}
	created := make(chan struct{})
	go func() {
		wg.Wait()
		createWall = time.Since(start)
		close(created)
	}()
	for {
		done, err := r.c.CountAgent(ctx, agent, "completed,failed,cancelled")
		if err != nil {
			return 0, 0, nil, err
		}
		if done >= n {
			wall = time.Since(start)
			break
		}
		mu.Lock()
		ferr := firstErr
		mu.Unlock()
		if ferr != nil {
			return 0, 0, nil, fmt.Errorf("creating tasks: %w", ferr)
		}
		select {
		case <-ctx.Done():
			return 0, 0, nil, fmt.Errorf("%d of %d tasks done: %w", done, n, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	<-created
	bad, err := r.c.CountAgent(ctx, agent, "failed,cancelled")
	if err != nil {
		return 0, 0, nil, err
	}
	if bad > 0 {
		return 0, 0, nil, fmt.Errorf("%d of %d throughput tasks did not complete", bad, n)
	}
	return wall, createWall, ids, nil
}

// taskPhases reads the logs of k of ids (spread over creation order) and
// records where their time went.
func (r *runner) taskPhases(ctx context.Context, t *ThroughputResult, ids []string, k int) {
	if len(ids) == 0 {
		return
	}
	step := max(1, len(ids)/k)
	phases := map[string][]float64{}
	for i := 0; i < len(ids); i += step {
		logs, err := r.c.Logs(ctx, ids[i])
		if err != nil {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("reading logs of %s: %v", ids[i], err))
			return
		}
		t.Sampled++
		for name, d := range PhasesOf(logs) {
			phases[name] = append(phases[name], ms(d))
		}
		for _, l := range logs {
			if strings.Contains(l.Message, "waiting for another terraform init") {
				t.InitWaits++
				break
			}
		}
	}
	for _, name := range phaseOrder {
		v := phases[name]
		if len(v) == 0 {
			continue
		}
		mx := 0.0
		for _, x := range v {
			mx = max(mx, x)
		}
		t.Phases = append(t.Phases, Phase{Name: name, P50MS: Median(v), MaxMS: mx})
	}
}

// phaseOrder names a task's phases in order.
var phaseOrder = []string{"waiting for a runner", "installing", "initializing", "planning", "applying", "accepted to completed"}

// PhasesOf splits a task's time by its workflow's own log lines: accepted,
// picked up, step X started, task completed.
func PhasesOf(logs []LogEntry) map[string]time.Duration {
	var accepted, picked, completed time.Time
	steps := map[string]time.Time{}
	var order []string
	for _, l := range logs {
		if l.Metadata["component"] != "workflow" {
			continue
		}
		switch m := l.Message; {
		case strings.HasPrefix(m, "task accepted"):
			accepted = l.Timestamp
		case strings.HasPrefix(m, "picked up by runner"):
			picked = l.Timestamp
		case strings.HasPrefix(m, "step ") && strings.HasSuffix(m, " started"):
			name := strings.TrimSuffix(strings.TrimPrefix(m, "step "), " started")
			steps[name] = l.Timestamp
			order = append(order, name)
		case m == "task completed":
			completed = l.Timestamp
		}
	}
	out := map[string]time.Duration{}
	if !accepted.IsZero() && !picked.IsZero() {
		out["waiting for a runner"] = picked.Sub(accepted)
	}
	for i, name := range order {
		end := completed
		if i+1 < len(order) {
			end = steps[order[i+1]]
		}
		if !end.IsZero() {
			out[name] = end.Sub(steps[name])
		}
	}
	if !accepted.IsZero() && !completed.IsZero() {
		out["accepted to completed"] = completed.Sub(accepted)
	}
	return out
}
