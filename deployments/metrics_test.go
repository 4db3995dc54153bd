package deployments

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/store/storetest"
)

// taskIDPattern matches task IDs ("task-" and 26 base32 characters) and the
// unknown IDs the test asks for.
var taskIDPattern = regexp.MustCompile(`task-([a-z2-7]{26}|unknown)`)

// sample is one line of the exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseExposition(t *testing.T, text string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var s sample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			s.name, rest = line[:i], line[j+1:]
			s.labels = map[string]string{}
			for _, m := range labelPair.FindAllStringSubmatch(line[i+1:j], -1) {
				s.labels[m[1]] = m[2]
			}
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// sum adds the samples of name whose labels include match.
func sum(samples []sample, name string, match map[string]string) (float64, bool) {
	var total float64
	found := false
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
		found = true
	}
	return total, found
}

// sdkFailureCounters appear only once a call to Temporal failed, which a
// healthy test instance never does. They are accepted in the dashboard when
// the SDK's source defines them (checked below).
var sdkFailureCounters = map[string]string{
	"temporal_request_failure_total":      `TemporalRequest + "_failure"`,
	"temporal_long_request_failure_total": `TemporalLongRequest + "_failure"`,
}

func sdkMetricConstants(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk").Output()
	if err != nil {
		t.Fatalf("locating the Temporal SDK module: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "common", "metrics", "constants.go"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// seedRunners writes 1,000 generated tasks of 200 runners into the dev
// store before it starts, so the scrape must cap the runner label.
func seedRunners(t *testing.T, dataDir string) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "terratask.db"))
	if err != nil {
		t.Fatal(err)
	}
	tasks := storetest.GenTasks("seeded-org", 1000, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range tasks {
		tasks[i].RunnerID = fmt.Sprintf("seeded-runner-%03d", i%200)
	}
	storetest.SeedTasks(t, st, tasks)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsOfARealInstance runs real tasks on `terratask dev` and scrapes
// its /metrics: the counters moved and the histograms have samples, the
// output passes `promtool check metrics`, every metric the dashboard and the
// alert rules use is exported, and after 1,000 more tasks (and 1,000 seeded
// over 200 runners) the series count stays bounded, with no task ID, name or
// agent in any label.
func TestMetricsOfARealInstance(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	seedRunners(t, dataDir)
	d := startDevInstance(t, dataDir)

	files := map[string]any{"main.tf": "variable \"n\" {\n  default = 2\n}\nresource \"terraform_data\" \"x\" {\n  count = var.n\n}\noutput \"n\" {\n  value = length(terraform_data.x)\n}\n"}
	ok := d.create(t, map[string]any{"name": "metrics ok", "agent_id": "agent-metrics", "runner_id": "local",
		"parameters": map[string]any{"files": files}})
	bad := d.create(t, map[string]any{"name": "metrics broken", "agent_id": "agent-metrics", "runner_id": "local",
		"parameters": map[string]any{"files": map[string]any{"main.tf": "resource \"terraform_data\" \"x\" {\n  no_such_argument = 1\n}\n"}}})
	if s := d.wait(t, ok); s != "completed" {
		t.Fatalf("task %s ended %s", ok, s)
	}
	if s := d.wait(t, bad); s != "failed" {
		t.Fatalf("task %s ended %s", bad, s)
	}
	d.do(t, http.MethodGet, "/api/v1/tasks/"+ok+"/logs", nil)
	d.do(t, http.MethodGet, "/no/such/route", nil)

	text, took := d.scrape(t)
	t.Logf("scrape after 2 tasks (and 1,000 seeded): %d bytes in %v", len(text), took)
	samples := parseExposition(t, text)

	// Counters moved and histograms have samples.
	for _, c := range []struct {
		name  string
		match map[string]string
		min   float64
	}{
		{"terratask_http_requests_total", map[string]string{"route": "/api/v1/tasks", "method": "POST", "code": "200"}, 2},
		{"terratask_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"terratask_http_request_duration_seconds_count", map[string]string{"route": "/api/v1/tasks/:taskId/status"}, 1},
		{"terratask_task_events_total", map[string]string{"type": "task.created"}, 2},
		{"terratask_task_events_total", map[string]string{"type": "task.completed"}, 1},
		{"terratask_task_events_total", map[string]string{"type": "task.failed"}, 1},
		{"terratask_task_duration_seconds_count", map[string]string{"status": "completed"}, 1},
		{"terratask_task_duration_seconds_count", map[string]string{"status": "failed"}, 1},
		{"terratask_task_pending_seconds_count", nil, 2},
		{"terratask_step_duration_seconds_count", map[string]string{"step": "applying", "outcome": "success"}, 1},
		{"terratask_step_duration_seconds_count", map[string]string{"step": "planning", "outcome": "error"}, 1},
		{"terratask_terraform_command_duration_seconds_count", map[string]string{"command": "apply", "outcome": "success"}, 1},
		{"terratask_terraform_command_duration_seconds_count", map[string]string{"command": "plan", "outcome": "error"}, 1},
		{"terratask_terraform_command_duration_seconds_count", map[string]string{"command": "init", "outcome": "success"}, 2},
		{"terratask_log_lines_appended_total", map[string]string{"level": "info"}, 10},
		{"terratask_tasks", map[string]string{"runner": "local", "status": "completed"}, 1},
		{"terratask_tasks", map[string]string{"runner": "local", "status": "failed"}, 1},
		{"terratask_runner_hosts", map[string]string{"runner": "local"}, 1},
		{"terratask_metrics_source_up", map[string]string{"source": "store"}, 1},
		{"terratask_metrics_source_up", map[string]string{"source": "temporal"}, 1},
		{"temporal_activity_schedule_to_start_latency_seconds_count", map[string]string{"activity_type": "terratask.Apply"}, 1},
		{"temporal_workflow_task_schedule_to_start_latency_seconds_count", nil, 1},
		{"temporal_worker_task_slots_available", map[string]string{"worker_type": "ActivityWorker"}, 1},
		{"temporal_request_total", nil, 1},
		{"temporal_long_request_total", nil, 1},
	} {
		if got, found := sum(samples, c.name, c.match); !found || got < c.min {
			t.Errorf("%s%v = %v (found %v), want >= %v", c.name, c.match, got, found, c.min)
		}
	}

	// promtool lints the exposition (names, units, _total, help).
	if pt, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(pt, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("promtool is not on PATH under CI: .ci/run installs it (Debian package prometheus)")
	} else {
		t.Log("promtool is not on PATH: skipping `promtool check metrics` (it runs under CI)")
	}

	// Every metric the dashboard and the rules use is exported.
	exported := map[string]bool{}
	for _, s := range samples {
		exported[s.name] = true
	}
	sdkSource := sdkMetricConstants(t)
	used := map[string][]string{}
	for _, e := range dashboardExprs(t) {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = append(used[m], "dashboard")
		}
	}
	for name, e := range alertExprs(t) {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = append(used[m], name)
		}
	}
	if len(used) < 15 {
		t.Fatalf("only %d metrics used: %v", len(used), used)
	}
	for m, where := range used {
		if exported[m] {
			continue
		}
		if c, ok := sdkFailureCounters[m]; ok && strings.Contains(sdkSource, c) {
			continue
		}
		t.Errorf("%s (used by %v) is not exported", m, where)
	}

	// 1,000 more tasks: distinct names and agents, each read back, and as
	// many unknown task IDs.
	before := len(samples)
	for i := 0; i < 1000; i++ {
		id := d.create(t, map[string]any{"name": fmt.Sprintf("bounded %d", i), "agent_id": fmt.Sprintf("agent-bounded-%d", i),
			"runner_id": "metrics-idle"})
		if code, _ := d.do(t, http.MethodGet, "/api/v1/tasks/"+id, nil); code != 200 {
			t.Fatalf("get %s: %d", id, code)
		}
		d.do(t, http.MethodGet, fmt.Sprintf("/api/v1/tasks/task-unknown%d/status", i), nil)
	}
	text, took = d.scrape(t)
	samples = parseExposition(t, text)
	t.Logf("scrape after 1,002 tasks (and 1,000 seeded over 200 runners): %d series (%d before the 1,000), %d bytes, in %v", len(samples), before, len(text), took)
	runners := map[string]bool{}
	for _, s := range samples {
		for k, v := range s.labels {
			if taskIDPattern.MatchString(v) || strings.Contains(v, "bounded") {
				t.Fatalf("label %s=%q of %s holds a task ID, name or agent", k, v, s.name)
			}
		}
		if s.name == "terratask_tasks" {
			runners[s.labels["runner"]] = true
		}
	}
	if len(runners) > 51 || !runners["_other"] || !runners["metrics-idle"] || !runners["local"] {
		keys := make([]string, 0, len(runners))
		for r := range runners {
			keys = append(keys, r)
		}
		sort.Strings(keys)
		t.Errorf("runner labels of terratask_tasks: %d %v", len(runners), keys)
	}
	// A handful of new series (the new runner, a status or route seen for
	// the first time), never one per task.
	if len(samples) > before+100 || len(samples) > 4000 {
		t.Errorf("%d series after 1,000 tasks, %d before: not bounded", len(samples), before)
	}
}
