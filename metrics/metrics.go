// Package metrics is terratask's Prometheus instrumentation: the metrics
// every process exports at /metrics (names with the terratask_ prefix, in
// base units, counters ending in _total), the functions the rest of the code
// calls to observe them, a gin middleware for HTTP requests, a collector that
// reads task counts from the store and runner liveness from Temporal at
// scrape time, and a Temporal SDK metrics handler that exports the SDK's own
// metrics (temporal_ prefix) to the same registry.
//
// Labels are bounded: statuses, steps, outcomes, route templates, methods and
// codes come from fixed sets (anything else is counted as "other"), runner
// IDs are capped (MaxRunners), and no label ever holds a task ID, a name or
// an agent.
//
// The observed metrics are process-wide, like promauto's: a process builds
// one registry with NewRegistry and serves it with Handler.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/terratask/terratask/task"
)

// Namespace prefixes every terratask metric.
const Namespace = "terratask"

// Outcomes of steps, Terraform commands and webhook deliveries.
const (
	OutcomeSuccess   = "success"
	OutcomeError     = "error"
	OutcomeCancelled = "cancelled"
	OutcomeOther     = "other"
)

var (
	httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "http_requests_total",
		Help: "HTTP requests served, by route template (\"unmatched\" for no route), method and status code.",
	}, []string{"route", "method", "code"})
	httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "http_request_duration_seconds",
		Help:    "Time to serve HTTP requests, by route template, method and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})

	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "task_duration_seconds",
		Help:    "Time from a task's creation until it ended, by final status (completed, failed, cancelled, rejected).",
		Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600},
	}, []string{"status"})
	taskPending = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "task_pending_seconds",
		Help:    "Time from a task's creation until a runner host picked it up.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 24 * 3600},
	}, nil)
	taskEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "task_events_total",
		Help: "Task transitions recorded, by the event they emit (task.created, task.running, task.step, task.completed...).",
	}, []string{"type"})

	stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "step_duration_seconds",
		Help:    "Duration of step attempts on runner hosts, by step and outcome (success, error, cancelled).",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	}, []string{"step", "outcome"})
	terraformCommands = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "terraform_command_duration_seconds",
		Help:    "Duration of Terraform commands run by runner hosts, by command (init, plan, apply, output) and outcome (success, error, cancelled).",
		Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	}, []string{"command", "outcome"})

	logLines = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "log_lines_appended_total",
		Help: "Task log lines written to the store by this process, by level (a retried write counts again).",
	}, []string{"level"})

	webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "webhook_deliveries_total",
		Help: "Webhook delivery attempts, by outcome (success, error, ...).",
	}, []string{"outcome"})

	policyChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "policy_checks_total",
		Help: "Policy checks of tasks evaluated by this process, by stage (pre_plan, post_plan) and decision (allow, require_approval, deny, error).",
	}, []string{"stage", "decision"})

	policyEval = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "policy_evaluation_seconds",
		Help:    "Time to evaluate an org's policies for one stage of a task (the compiled set's query; compiling and loading excluded).",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"stage"})

	isolation = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "runner_isolation",
		Help: "1 when this process's runners run task code in a sandbox, else 0 (--isolation auto on a host that cannot, or off); by configured mode.",
	}, []string{"mode"})
)

// SetIsolation records whether this process's runners sandbox task code,
// and the configured mode (strict, auto, off).
func SetIsolation(mode string, active bool) {
	isolation.Reset()
	v := 0.0
	if active {
		v = 1
	}
	isolation.WithLabelValues(mode).Set(v)
}

// Known label values, so every series exists from the start (a rate over a
// series that appears later misses its first increase) and anything else is
// folded into "other".
var (
	taskStatuses  = terminalStatuses()
	eventTypes    = names(task.EventTypes)
	steps         = names([]task.Step{task.StepInstalling, task.StepInitializing, task.StepPlanning, task.StepApplying, task.StepDestroying})
	outcomes      = []string{OutcomeSuccess, OutcomeError, OutcomeCancelled}
	commands      = []string{"init", "plan", "apply", "output", "show", "version"}
	levels        = []string{"debug", "info", "warn", "error"}
	deliveryKinds = []string{OutcomeSuccess, OutcomeError, "retry", "dropped"}
	policyStages  = []string{task.PolicyPrePlan, task.PolicyPostPlan}
	decisions     = []string{task.PolicyAllow, task.PolicyRequireApproval, task.PolicyDeny, task.PolicyError}
)

func terminalStatuses() []string {
	var out []string
	for _, s := range task.Statuses {
		if s.Terminal() {
			out = append(out, string(s))
		}
	}
	return out
}

func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func init() {
	for _, s := range taskStatuses {
		taskDuration.WithLabelValues(s)
	}
	for _, e := range eventTypes {
		taskEvents.WithLabelValues(e)
	}
	for _, l := range levels {
		logLines.WithLabelValues(l)
	}
	for _, o := range deliveryKinds {
		webhookDeliveries.WithLabelValues(o)
	}
	for _, st := range policyStages {
		policyEval.WithLabelValues(st)
		for _, d := range decisions {
			policyChecks.WithLabelValues(st, d)
		}
	}
}

// PolicyCheck records one policy check of a task: its stage, its decision
// and how long its evaluation took.
func PolicyCheck(stage, decision string, d time.Duration) {
	stage = bounded(stage, policyStages)
	policyChecks.WithLabelValues(stage, bounded(decision, decisions)).Inc()
	policyEval.WithLabelValues(stage).Observe(d.Seconds())
}

func bounded(v string, known []string) string {
	for _, k := range known {
		if v == k {
			return v
		}
	}
	return OutcomeOther
}

// ObserveTaskEnded records a task that reached a terminal status after d
// since its creation.
func ObserveTaskEnded(status task.Status, d time.Duration) {
	taskDuration.WithLabelValues(bounded(string(status), taskStatuses)).Observe(d.Seconds())
}

// ObserveTaskPickedUp records how long a task waited for its runner.
func ObserveTaskPickedUp(d time.Duration) {
	taskPending.WithLabelValues().Observe(d.Seconds())
}

// TaskEvent counts a recorded transition by the event it emits.
func TaskEvent(eventType task.EventType) {
	taskEvents.WithLabelValues(bounded(string(eventType), eventTypes)).Inc()
}

// ObserveStep records one step attempt on a runner host. Activities that
// are no step of the task (claiming a host, cleaning up) are not recorded.
func ObserveStep(step task.Step, outcome string, d time.Duration) {
	if bounded(string(step), steps) != string(step) {
		return
	}
	stepDuration.WithLabelValues(string(step), bounded(outcome, outcomes)).Observe(d.Seconds())
}

// ObserveTerraformCommand records one Terraform command.
func ObserveTerraformCommand(command, outcome string, d time.Duration) {
	terraformCommands.WithLabelValues(bounded(command, commands), bounded(outcome, outcomes)).Observe(d.Seconds())
}

// LogLinesAppended counts n log lines of a level written to the store.
func LogLinesAppended(level string, n int) {
	logLines.WithLabelValues(bounded(level, levels)).Add(float64(n))
}

// WebhookDelivery counts one webhook delivery attempt by its outcome:
// "success", "error" (the receiver failed or could not be reached; it is
// retried), "retry", "dropped" (given up), or anything else as "other".
func WebhookDelivery(outcome string) {
	webhookDeliveries.WithLabelValues(bounded(outcome, deliveryKinds)).Inc()
}

// NewRegistry returns a registry with the Go runtime and process metrics,
// every terratask metric this process observes, the Temporal SDK's metrics
// (SDKHandler) and, when src is not nil, the task counts and runner liveness
// it reads at scrape time.
func NewRegistry(src *Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		httpRequests, httpDuration,
		taskDuration, taskPending, taskEvents,
		stepDuration, terraformCommands,
		logLines, webhookDeliveries, isolation, policyChecks, policyEval,
		sdkMetrics,
	)
	if src != nil {
		reg.MustRegister(newSourceCollector(*src))
	}
	return reg
}

// Handler serves a registry in Prometheus' text format (or OpenMetrics when
// the scraper asks for it).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg, // counts its own scrapes (promhttp_metric_handler_*)
		EnableOpenMetrics: true,
		Timeout:           30 * time.Second,
	})
}
