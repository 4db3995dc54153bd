package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

func openSQLite(tb testing.TB) store.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "store.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			total += m.GetGauge().GetValue()
			found = true
		}
	}
	return total, found
}

// TestMetricsSourcesReadTheStoreAndTemporal checks the scrape-time sources
// against a real SQLite store and a real Temporal server with a worker
// polling one runner's queue.
func TestMetricsSourcesReadTheStoreAndTemporal(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	w := sdkworker.New(c, task.RunnerTaskQueue(devOrg, "polled"), sdkworker.Options{})
	w.RegisterActivityWithOptions(func(context.Context) error { return nil }, activity.RegisterOptions{Name: "noop"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	st := openSQLite(t)
	tasks := storetest.GenTasks("org-a", 300, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	storetest.SeedTasks(t, st, append(tasks, storetest.GenTasks("org-b", 100, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))...))
	want := map[string]float64{}
	for _, tk := range tasks {
		if tk.RunnerID == "runner-1" {
			want[string(tk.Status)]++
		}
	}
	for _, tk := range storetest.GenTasks("org-b", 100, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		if tk.RunnerID == "runner-1" {
			want[string(tk.Status)]++
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		reg := metrics.NewRegistry(metricsSources(st, c, devOrg, []string{"polled"}))
		for status, n := range want {
			if got, _ := gauge(t, reg, "terratask_tasks", map[string]string{"runner": "runner-1", "status": status}); got != n {
				t.Fatalf("terratask_tasks{runner-1,%s} = %v, want %v", status, got, n)
			}
		}
		idle, found := gauge(t, reg, "terratask_runner_hosts", map[string]string{"runner": "runner-0"})
		if !found || idle != 0 {
			t.Fatalf("runner-0 (no host) hosts %v found %v", idle, found)
		}
		if n, _ := gauge(t, reg, "terratask_runner_hosts", map[string]string{"runner": "polled"}); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the polling worker never showed as a runner host")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// BenchmarkScrape100k measures a whole /metrics scrape of the API (store
// counts, runner liveness from a real Temporal, every other collector, the
// text encoding) with 100,000 tasks in the SQLite store.
func BenchmarkScrape100k(b *testing.B) {
	ts := temporaltest.NewServer()
	defer ts.Stop()
	var c client.Client = ts.GetDefaultClient()
	st := openSQLite(b)
	start := time.Now()
	storetest.SeedTasks(b, st, storetest.GenTasks("bench", 100_000, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	b.Logf("seeded 100000 tasks in %v", time.Since(start).Round(time.Millisecond))
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(metricsSources(st, c, devOrg, []string{"local"}))))
	defer srv.Close()
	scrape := func() int {
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `terratask_tasks{runner="runner-3",status="pending"}`) {
			b.Fatalf("scrape: %d", resp.StatusCode)
		}
		return len(body)
	}
	n := scrape() // the first asks Temporal; later ones reuse it for 15 s
	b.ResetTimer()
	for b.Loop() {
		scrape()
	}
	b.ReportMetric(float64(n), "bytes/scrape")
}
