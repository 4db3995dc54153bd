package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/taskstart"
)

// floorBody is the trivial handler's reply: about the size of a status.
const floorBody = `{"id":"task-floor","status":"completed","progress":100}`

// startFloor serves a trivial handler returning floorBody on a free port of
// this process: the client's own ceiling.
func startFloor() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(floorBody))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// latency sends n sequential GETs of path(i) (fewer, but at least 200, when
// they pass budget) and returns their latencies and the size of the last
// body.
func latency(ctx context.Context, c *Client, n int, budget time.Duration, path func(i int) string) (Dist, int, error) {
	ds := make([]time.Duration, 0, n)
	size := 0
	start := time.Now()
	for i := range n {
		if budget > 0 && i >= 200 && time.Since(start) > budget {
			break
		}
		start := time.Now()
		code, _, body, err := c.Do(ctx, http.MethodGet, path(i), nil)
		d := time.Since(start)
		if err != nil {
			return Dist{}, 0, err
		}
		if code != http.StatusOK {
			return Dist{}, 0, fmt.Errorf("GET %s: %d %.300s", path(i), code, body)
		}
		ds = append(ds, d)
		size = len(body)
	}
	return Summarise(ds), size, nil
}

// rps runs clients goroutines sending GETs of path(i) back to back for d and
// returns the rate of 200 replies, and how many requests failed.
func rps(ctx context.Context, c *Client, clients int, d time.Duration, path func(i int) string) (float64, int) {
	var ok, bad atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i += clients {
				code, _, _, err := c.Do(ctx, http.MethodGet, path(i), nil)
				switch {
				case err != nil && ctx.Err() != nil:
					return
				case err != nil || code != http.StatusOK:
					bad.Add(1)
				default:
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), int(bad.Load())
}

// apiReads runs the read half of item 3 on the seeded store.
func (r *runner) apiReads(ctx context.Context) error {
	if len(r.seed.Completed) == 0 {
		return errors.New("the store was not seeded")
	}
	a := &APIResult{Seeded: r.seed.Tasks, SeededLogs: r.seed.Logs, SeedSeconds: r.seed.Took.Seconds()}
	r.res.API = a
	floorURL, stopFloor, err := startFloor()
	if err != nil {
		return err
	}
	defer stopFloor()
	floor := NewClient(floorURL, r.key, r.cfg.RPSClients)
	n := r.cfg.LatencySamples
	rng := rand.New(rand.NewPCG(1, 2))
	ids := r.seed.Completed
	randomTask := func(int) string { return "/api/v1/tasks/" + ids[rng.IntN(len(ids))] }
	logs := "/api/v1/tasks/" + r.seed.LogTask + "/logs"
	reads := []struct {
		name   string
		path   func(int) string
		target float64
	}{
		{"GET /tasks/{id}", randomTask, 25},
		{"GET /tasks?limit=100 (first page)", func(int) string { return "/api/v1/tasks?limit=100" }, 25},
		{"GET /tasks?status=running&sort=updated_at&limit=100", func(int) string {
			return "/api/v1/tasks?status=running&sort=updated_at&limit=100"
		}, 25},
		{"GET /tasks?limit=100&page=500 (offset 49,900)", func(int) string { return "/api/v1/tasks?limit=100&page=500" }, 25},
		{"GET /tasks/{id}/logs?level=warn,error (1,000 entries)", func(int) string { return logs + "?level=warn,error" }, 50},
		{"GET /tasks/{id}/logs?level=error&limit=100", func(int) string { return logs + "?level=error&limit=100" }, 50},
	}
	// Warm both servers and the client's connections.
	for _, rd := range reads {
		if _, _, err := latency(ctx, r.c, 20, 0, rd.path); err != nil {
			return err
		}
	}
	if _, _, err := latency(ctx, floor, 20, 0, func(int) string { return "/" }); err != nil {
		return err
	}
	for _, rd := range reads {
		d, size, err := latency(ctx, r.c, n, r.cfg.LatencyBudget, rd.path)
		if err != nil {
			return err
		}
		a.Reads = append(a.Reads, ReadLatency{Name: rd.name, Path: rd.path(0), Dist: d, TargetMS: rd.target, Bytes: size})
		r.logf("  %-55s p50 %6.2f ms  p99 %6.2f ms  (%d bytes)", rd.name, d.P50, d.P99, size)
	}
	if a.Floor, _, err = latency(ctx, floor, n, r.cfg.LatencyBudget, func(int) string { return "/" }); err != nil {
		return err
	}
	r.logf("  %-55s p50 %6.2f ms  p99 %6.2f ms", "trivial handler (floor)", a.Floor.P50, a.Floor.P99)

	var mu sync.Mutex
	rngLocked := func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		return randomTask(i)
	}
	a.RPS, a.RPSErrors = rps(ctx, r.c, r.cfg.RPSClients, r.cfg.RPSDuration, rngLocked)
	a.FloorRPS, _ = rps(ctx, floor, r.cfg.RPSClients, r.cfg.RPSDuration, func(int) string { return "/" })
	r.logf("  GET /tasks/{id} from %d clients: %.0f req/s (%d errors); trivial handler: %.0f req/s", r.cfg.RPSClients, a.RPS, a.RPSErrors, a.FloorRPS)
	if a.RPSErrors > 0 {
		return fmt.Errorf("%d GET requests failed under load", a.RPSErrors)
	}
	return nil
}

// nopLogger silences the Temporal SDK.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// BenchWorkflowType and BenchTaskQueue are what the raw StartWorkflow
// baseline starts: a workflow nobody runs (no worker polls the queue), so
// StartWorkflow returns when the server has accepted it, as for a task.
const (
	BenchWorkflowType = "terratask.BenchNoop"
	BenchTaskQueue    = "terratask-bench-noop"
)

// createLatency runs the create half of item 3: POST /api/v1/tasks against a
// raw StartWorkflow on the same embedded Temporal, alternating. The tasks
// name a runner nobody serves, so they stay pending and run no terraform.
func (r *runner) createLatency(ctx context.Context) error {
	topts, err := r.dev.temporalOptions()
	if err != nil {
		return err
	}
	tc, err := client.Dial(topts)
	if err != nil {
		return fmt.Errorf("dialing Temporal at %s: %w", r.dev.Temporal, err)
	}
	defer tc.Close()
	body := CreateBody(TaskParams{Name: "bench create", AgentID: "bench-create", RunnerID: "bench-absent",
		Files: ResourcesFixture(1).Files})
	post := func() (time.Duration, error) {
		start := time.Now()
		_, err := r.c.Create(ctx, body)
		return time.Since(start), err
	}
	prefix := "bench-raw-" + randHex(4) + "-"
	seq := 0
	start := func() (time.Duration, error) {
		seq++
		t := time.Now()
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s%d", prefix, seq), TaskQueue: BenchTaskQueue},
			BenchWorkflowType, map[string]string{"name": "bench create"})
		return time.Since(t), err
	}
	// A diagnostic third series: the StartWorkflow terratask itself makes
	// (its workflow type's input with the same files, its ID policy and
	// search attributes), still on the queue nobody polls. POST minus this
	// is what the API adds around Temporal (HTTP, auth, parsing, the store
	// insert).
	files := ResourcesFixture(1).Files
	startTask := func() (time.Duration, error) {
		seq++
		id := fmt.Sprintf("%s%d", prefix, seq)
		in := task.Input{ID: id, Name: "bench create", AgentID: "bench-create", RunnerID: "bench-absent", Org: DevOrg,
			CreatedAt: time.Now().UTC(), CreatedBy: "dev-admin", Params: task.Params{Files: files, Workspace: id}}
		t := time.Now()
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: BenchTaskQueue,
			WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			TypedSearchAttributes:                    taskstart.SearchAttributes(in),
		}, BenchWorkflowType, in)
		return time.Since(t), err
	}
	for range 10 {
		for _, f := range []func() (time.Duration, error){post, start, startTask} {
			if _, err := f(); err != nil {
				return err
			}
		}
	}
	var posts, starts, full []time.Duration
	for range r.cfg.CreateSamples {
		for _, s := range []struct {
			f   func() (time.Duration, error)
			out *[]time.Duration
		}{{post, &posts}, {start, &starts}, {startTask, &full}} {
			d, err := s.f()
			if err != nil {
				return err
			}
			*s.out = append(*s.out, d)
		}
	}
	if r.res.API == nil {
		r.res.API = &APIResult{}
	}
	a := r.res.API
	a.Create, a.StartWF, a.StartTaskWF = Summarise(posts), Summarise(starts), Summarise(full)
	r.logf("  POST /tasks p50 %.2f ms p99 %.2f ms; StartWorkflow p50 %.2f ms p99 %.2f ms; StartWorkflow as terratask makes it p50 %.2f ms p99 %.2f ms",
		a.Create.P50, a.Create.P99, a.StartWF.P50, a.StartWF.P99, a.StartTaskWF.P50, a.StartTaskWF.P99)
	return nil
}
