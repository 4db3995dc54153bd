package metrics

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/terratask/terratask/task"
)

// MaxRunners caps the runner label of the per-runner gauges: the runners
// with the most tasks in flight keep their own series, the rest are summed
// under RunnerOther. Runner IDs come from API callers, so without a cap a
// caller could make series without bound.
const MaxRunners = 50

// RunnerOther is the runner label of the runners past MaxRunners.
const RunnerOther = "_other"

// TaskCount is the number of tasks of one runner in one status, over all
// orgs.
type TaskCount struct {
	Runner string
	Status string
	Tasks  int
}

// Sources are what the API process reads at scrape time.
type Sources struct {
	// TaskCounts reads the task counts (the store keeps them per org,
	// status, agent and runner, so this is a sum over a few rows, not a
	// count over every task).
	TaskCounts func(ctx context.Context) ([]TaskCount, error)
	// RunnerHosts counts the hosts that polled a runner's queue recently
	// (Temporal's task-queue pollers).
	RunnerHosts func(ctx context.Context, runner string) (int, error)
	// Runners are runner IDs reported even before a task names them.
	Runners []string
	// Timeout bounds each scrape's reads (default 5s).
	Timeout time.Duration
	// HostsTTL is how long a runner's host count is reused (default 15s):
	// Prometheus servers scraping every few seconds ask Temporal once.
	HostsTTL time.Duration
}

// activeStatuses are the statuses of tasks that are not finished.
var activeStatuses = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range task.Statuses {
		if !s.Terminal() {
			m[string(s)] = true
		}
	}
	return m
}()

var (
	descTasks = prometheus.NewDesc(Namespace+"_tasks",
		"Tasks in the store, by status and runner (over all orgs).", []string{"status", "runner"}, nil)
	descRunnerHosts = prometheus.NewDesc(Namespace+"_runner_hosts",
		"Runner hosts that polled the runner's task queue within the last 2 minutes.", []string{"runner"}, nil)
	descSourceUp = prometheus.NewDesc(Namespace+"_metrics_source_up",
		"1 when the last scrape could read the source (store, temporal), else 0.", []string{"source"}, nil)
	descScrape = prometheus.NewDesc(Namespace+"_metrics_source_duration_seconds",
		"Time the last scrape spent reading the source.", []string{"source"}, nil)
)

type hostsEntry struct {
	n  int
	at time.Time
	ok bool
}

type sourceCollector struct {
	src Sources

	mu    sync.Mutex
	hosts map[string]hostsEntry
}

func newSourceCollector(src Sources) *sourceCollector {
	if src.Timeout <= 0 {
		src.Timeout = 5 * time.Second
	}
	if src.HostsTTL <= 0 {
		src.HostsTTL = 15 * time.Second
	}
	return &sourceCollector{src: src, hosts: map[string]hostsEntry{}}
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTasks
	ch <- descRunnerHosts
	ch <- descSourceUp
	ch <- descScrape
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.src.Timeout)
	defer cancel()
	var runners []string
	if c.src.TaskCounts != nil {
		start := time.Now()
		counts, err := c.src.TaskCounts(ctx)
		ch <- prometheus.MustNewConstMetric(descScrape, prometheus.GaugeValue, time.Since(start).Seconds(), "store")
		ch <- prometheus.MustNewConstMetric(descSourceUp, prometheus.GaugeValue, up(err), "store")
		if err == nil {
			var byKey map[[2]string]int
			byKey, runners = capRunners(counts, c.src.Runners)
			for k, n := range byKey {
				ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n), k[0], k[1])
			}
		}
	}
	if c.src.RunnerHosts != nil {
		if runners == nil {
			runners = capList(c.src.Runners)
		}
		start := time.Now()
		hosts, err := c.runnerHosts(ctx, runners)
		ch <- prometheus.MustNewConstMetric(descScrape, prometheus.GaugeValue, time.Since(start).Seconds(), "temporal")
		ch <- prometheus.MustNewConstMetric(descSourceUp, prometheus.GaugeValue, up(err), "temporal")
		for r, n := range hosts {
			ch <- prometheus.MustNewConstMetric(descRunnerHosts, prometheus.GaugeValue, float64(n), r)
		}
	}
}

func up(err error) float64 {
	if err != nil {
		return 0
	}
	return 1
}

// capRunners sums the counts by (status, runner), keeping the MaxRunners
// runners with most active tasks (then most tasks, then by name) and
// folding the rest into RunnerOther. It returns the kept runners too; the
// always-reported ones come first.
func capRunners(counts []TaskCount, always []string) (map[[2]string]int, []string) {
	active, total := map[string]int{}, map[string]int{}
	for _, tc := range counts {
		total[tc.Runner] += tc.Tasks
		if activeStatuses[tc.Status] {
			active[tc.Runner] += tc.Tasks
		}
	}
	for _, r := range always {
		if _, ok := total[r]; !ok {
			total[r] = 0
		}
	}
	names := make([]string, 0, len(total))
	for r := range total {
		names = append(names, r)
	}
	pinned := map[string]bool{}
	for _, r := range always {
		pinned[r] = true
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if pinned[a] != pinned[b] {
			return pinned[a]
		}
		if active[a] != active[b] {
			return active[a] > active[b]
		}
		if total[a] != total[b] {
			return total[a] > total[b]
		}
		return a < b
	})
	if len(names) > MaxRunners {
		names = names[:MaxRunners]
	}
	kept := map[string]bool{}
	for _, r := range names {
		kept[r] = true
	}
	out := map[[2]string]int{}
	for _, tc := range counts {
		r := tc.Runner
		if !kept[r] {
			r = RunnerOther
		}
		out[[2]string{tc.Status, r}] += tc.Tasks
	}
	return out, names
}

func capList(rs []string) []string {
	if len(rs) > MaxRunners {
		return rs[:MaxRunners]
	}
	return rs
}

// runnerHosts asks Temporal about each runner (at most 4 at once), reusing
// answers younger than HostsTTL. A runner whose question failed keeps its
// last answer if it has one; the error is reported once.
func (c *sourceCollector) runnerHosts(ctx context.Context, runners []string) (map[string]int, error) {
	out := make(map[string]int, len(runners))
	now := time.Now()
	var todo []string
	c.mu.Lock()
	for _, r := range runners {
		if e, ok := c.hosts[r]; ok && now.Sub(e.at) < c.src.HostsTTL {
			out[r] = e.n
		} else {
			todo = append(todo, r)
		}
	}
	c.mu.Unlock()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, 4)
	)
	for _, r := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func(r string) {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := c.src.RunnerHosts(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			c.mu.Lock()
			defer c.mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				if e, ok := c.hosts[r]; ok && e.ok {
					out[r] = e.n
				}
				return
			}
			c.hosts[r] = hostsEntry{n: n, at: time.Now(), ok: true}
			out[r] = n
		}(r)
	}
	wg.Wait()
	// Forget runners no longer reported, so the cache stays bounded.
	c.mu.Lock()
	for r := range c.hosts {
		if !contains(runners, r) {
			delete(c.hosts, r)
		}
	}
	c.mu.Unlock()
	return out, firstErr
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
