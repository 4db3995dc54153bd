package fleet

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCreateThroughput measures task creation through two API replicas
// against one, on the same fleet in the same run: rounds alternate between
// POSTing a burst of tasks to replica 1 only and spreading the same burst
// over both replicas, from the same number of concurrent clients. It reports
// the median creates per second of each and their ratio (two over one).
//
// The tasks name a runner nobody serves, so they stay pending: this
// measures the create path (validation, the store's index row, the
// workspace queue and StartWorkflow on Temporal), not Terraform. Run it with
// `make bench-fleet`; b.N is ignored (use -benchtime 1x).
func BenchmarkCreateThroughput(b *testing.B) {
	f := startFleet(b, 2)
	const (
		rounds  = 5
		burst   = 200
		clients = 20
	)
	var seq atomic.Int64
	run := func(replicas []*apiClient) float64 {
		var wg sync.WaitGroup
		var failed atomic.Int64
		next := atomic.Int64{}
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= burst {
						return
					}
					n := seq.Add(1)
					_, err := replicas[int(i)%len(replicas)].create(map[string]any{
						"name": fmt.Sprintf("bench-%d", n), "agent_id": "agent-bench", "runner_id": "nobody",
						"parameters": map[string]any{"files": map[string]string{"main.tf": "# empty\n"}},
					})
					if err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d creates failed", n)
		}
		return burst / time.Since(start).Seconds()
	}
	// A warm-up burst on each replica: connections, prepared statements.
	run(f.replicas[:1])
	run(f.replicas[1:])
	b.ResetTimer()
	var one, two []float64
	cpu0 := sampleCPU(f)
	for range rounds {
		one = append(one, run(f.replicas[:1]))
		two = append(two, run(f.replicas))
	}
	cpu1 := sampleCPU(f)
	b.StopTimer()
	creates := float64(2 * rounds * burst)
	b.Logf("CPU per create (ms), all rounds: Temporal %.1f, API replicas %.1f, benchmark clients %.1f, the rest (PostgreSQL, other processes) %.1f; machine busy %.0f%% of %d cores",
		(cpu1.temporal-cpu0.temporal)/creates*1000, (cpu1.replicas-cpu0.replicas)/creates*1000, (cpu1.self-cpu0.self)/creates*1000,
		((cpu1.busy-cpu0.busy)-(cpu1.temporal-cpu0.temporal)-(cpu1.replicas-cpu0.replicas)-(cpu1.self-cpu0.self))/creates*1000,
		100*(cpu1.busy-cpu0.busy)/(cpu1.total-cpu0.total), runtime.NumCPU())
	m1, m2 := median(one), median(two)
	b.ReportMetric(m1, "creates/s-1-replica")
	b.ReportMetric(m2, "creates/s-2-replicas")
	b.ReportMetric(m2/m1, "ratio-2/1")
	b.Logf("%d rounds of %d creates from %d clients: one replica %.0f/s (rounds %.0f), two replicas %.0f/s (rounds %.0f): ratio %.2f",
		rounds, burst, clients, m1, one, m2, two, m2/m1)
}

// cpuSample is CPU seconds used so far: by Temporal, the API replicas and
// this process, and by the whole machine (busy and total).
type cpuSample struct{ temporal, replicas, self, busy, total float64 }

func sampleCPU(f *fleet) cpuSample {
	s := cpuSample{temporal: procCPU(f.temporal.proc.cmd.Process.Pid), self: procCPU(os.Getpid())}
	for _, r := range f.replicas {
		s.replicas += procCPU(r.proc.cmd.Process.Pid)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		fields := strings.Fields(line)[1:]
		for i, v := range fields {
			n, _ := strconv.ParseFloat(v, 64)
			s.total += n / 100
			if i != 3 && i != 4 { // idle, iowait
				s.busy += n / 100
			}
		}
	}
	return s
}

// procCPU is a process's user and system CPU seconds (clock ticks of 1/100 s).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (u + st) / 100
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
