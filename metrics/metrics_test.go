package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/terratask/terratask/task"
)

// scrape serves reg over real HTTP and returns the text exposition.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestGinMiddlewareLabelsByRouteTemplate(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(GinMiddleware())
	r.GET("/api/v1/tasks/:taskId", func(c *gin.Context) { c.String(200, "ok") })
	srv := httptest.NewServer(r)
	defer srv.Close()
	for i := 0; i < 20; i++ {
		for _, p := range []string{fmt.Sprintf("/api/v1/tasks/task-%d", i), fmt.Sprintf("/random/%d", i)} {
			resp, err := http.Get(srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	req, _ := http.NewRequest("BREW", srv.URL+"/api/v1/tasks/x", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	reg := NewRegistry(nil)
	mf := family(t, reg, "terratask_http_requests_total")
	got := map[string]float64{}
	for _, m := range mf.GetMetric() {
		l := labels(m)
		got[l["route"]+" "+l["method"]+" "+l["code"]] += m.GetCounter().GetValue()
		if strings.Contains(l["route"], "task-") {
			t.Fatalf("a task ID in a label: %v", l)
		}
	}
	if got["/api/v1/tasks/:taskId GET 200"] < 20 || got["unmatched GET 404"] < 20 || got["unmatched OTHER 405"] < 1 {
		t.Fatalf("requests by route: %v", got)
	}
	h := family(t, reg, "terratask_http_request_duration_seconds")
	var n uint64
	for _, m := range h.GetMetric() {
		if labels(m)["route"] == "/api/v1/tasks/:taskId" {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	if n < 20 {
		t.Fatalf("latency samples %d", n)
	}
}

func TestSDKHandlerExportsCountersGaugesAndTimers(t *testing.T) {
	h := SDKHandler().WithTags(map[string]string{"namespace": "ns-sdk-test", "task_queue": "q"})
	h.Counter("temporal_request").Inc(3)
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(2)
	h.Gauge("temporal_worker_task_slots_available").Update(7)
	h.Timer("temporal_activity_schedule_to_start_latency").Record(30 * time.Millisecond)
	h.Timer("temporal_activity_schedule_to_start_latency").Record(2 * time.Minute)
	reg := NewRegistry(nil)
	text := scrape(t, reg)
	for _, want := range []string{
		`temporal_request_total{namespace="ns-sdk-test",task_queue="q"} 3`,
		`temporal_request_total{namespace="ns-sdk-test",operation="StartWorkflowExecution",task_queue="q"} 2`,
		`temporal_worker_task_slots_available{namespace="ns-sdk-test",task_queue="q"} 7`,
		`temporal_activity_schedule_to_start_latency_seconds_bucket{namespace="ns-sdk-test",task_queue="q",le="0.05"} 1`,
		`temporal_activity_schedule_to_start_latency_seconds_bucket{namespace="ns-sdk-test",task_queue="q",le="+Inf"} 2`,
		`temporal_activity_schedule_to_start_latency_seconds_count{namespace="ns-sdk-test",task_queue="q"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
}

func TestSourcesCapRunnersAndReportFailures(t *testing.T) {
	var counts []TaskCount
	for i := 0; i < MaxRunners+30; i++ {
		counts = append(counts, TaskCount{Runner: fmt.Sprintf("r%03d", i), Status: "completed", Tasks: 1})
	}
	// The runner with pending work is kept whatever its name.
	counts = append(counts, TaskCount{Runner: "zz-busy", Status: "pending", Tasks: 5})
	var asked atomic.Int64
	src := Sources{
		TaskCounts: func(context.Context) ([]TaskCount, error) { return counts, nil },
		RunnerHosts: func(_ context.Context, r string) (int, error) {
			asked.Add(1)
			if r == "zz-busy" {
				return 0, nil
			}
			return 1, nil
		},
		Runners: []string{"configured-only"},
	}
	reg := NewRegistry(&src)
	mf := family(t, reg, "terratask_tasks")
	runners := map[string]bool{}
	var total float64
	for _, m := range mf.GetMetric() {
		runners[labels(m)["runner"]] = true
		total += m.GetGauge().GetValue()
	}
	// configured-only is kept (it has no tasks, so no series): 49 runners and _other.
	if len(runners) != MaxRunners || !runners[RunnerOther] || !runners["zz-busy"] || total != float64(MaxRunners+30+5) {
		t.Fatalf("%d runner labels (other %v, busy %v), total %v", len(runners), runners[RunnerOther], runners["zz-busy"], total)
	}
	hosts := family(t, reg, "terratask_runner_hosts")
	seen := map[string]float64{}
	for _, m := range hosts.GetMetric() {
		seen[labels(m)["runner"]] = m.GetGauge().GetValue()
	}
	if len(seen) != MaxRunners || seen["zz-busy"] != 0 || seen["configured-only"] != 1 {
		t.Fatalf("hosts %d %v", len(seen), seen["zz-busy"])
	}
	// Within HostsTTL a second scrape asks Temporal nothing.
	before := asked.Load()
	family(t, reg, "terratask_runner_hosts")
	if asked.Load() != before {
		t.Fatalf("asked Temporal again within the TTL: %d then %d", before, asked.Load())
	}

	// A store that fails is reported, not hidden.
	bad := Sources{TaskCounts: func(context.Context) ([]TaskCount, error) { return nil, errors.New("down") }}
	breg := prometheus.NewRegistry()
	breg.MustRegister(newSourceCollector(bad))
	up := family(t, breg, "terratask_metrics_source_up")
	if up == nil || up.GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Fatalf("source_up %v", up)
	}
}

func TestBoundedLabelValues(t *testing.T) {
	ObserveStep(task.Step("no-such-step"), "weird", time.Second)
	ObserveTerraformCommand("rm -rf", OutcomeSuccess, time.Second)
	WebhookDelivery("teapot")
	TaskEvent(task.EventType("task.unknown"))
	text := scrape(t, NewRegistry(nil))
	for _, bad := range []string{"no-such-step", "weird", "rm -rf", "teapot", "task.unknown"} {
		if strings.Contains(text, bad) {
			t.Errorf("unbounded label value %q exported", bad)
		}
	}
	if strings.Contains(text, `step="other"`) || !strings.Contains(text, `terratask_webhook_deliveries_total{outcome="other"}`) {
		t.Fatal("unknown values are not counted as other")
	}
}
