package fleet

import (
	"fmt"
	"sort"
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
	for range rounds {
		one = append(one, run(f.replicas[:1]))
		two = append(two, run(f.replicas))
	}
	b.StopTimer()
	m1, m2 := median(one), median(two)
	b.ReportMetric(m1, "creates/s-1-replica")
	b.ReportMetric(m2, "creates/s-2-replicas")
	b.ReportMetric(m2/m1, "ratio-2/1")
	b.Logf("%d rounds of %d creates from %d clients: one replica %.0f/s (rounds %.0f), two replicas %.0f/s (rounds %.0f): ratio %.2f",
		rounds, burst, clients, m1, one, m2, two, m2/m1)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
