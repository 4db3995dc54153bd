package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/codec/control"
	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// apiOps are the API's operational parts: the payload codec (also its
// routes), the origins allowed to call them, and /metrics (nil when served
// on a listener of its own).
type apiOps struct {
	codec        *control.Codec
	codecOrigins []string
	// devUI is terratask dev's Web UI's codec session (nil: none).
	devUI   *server.CodecSession
	metrics http.Handler
}

// secretKeys are a process's secret key and the older keys it still accepts
// for decryption after a rotation (--old-secret-keys-file).
type secretKeys struct {
	current []byte
	old     [][]byte
}

func loadSecretKeys(current []byte, oldFile string) (secretKeys, error) {
	k := secretKeys{current: current}
	if oldFile != "" {
		old, err := secret.ReadKeysFile(oldFile)
		if err != nil {
			return k, err
		}
		k.old = old
	}
	return k, nil
}

// box is the control plane's box: the secret key's, with the old keys
// accepted, deriving every org's box (secret.NewMasterBox).
func (k secretKeys) box() (*master.Box, error) {
	return master.New(k.current, k.old...)
}

// control is the control plane's payload codec.
func (k secretKeys) control() (*control.Codec, error) {
	return control.New(k.current, k.old...)
}

// orgBox is a runner's box when the keys are org's keys (secret.OrgKey).
func (k secretKeys) orgBox() (*secret.Box, error) {
	b, err := secret.NewBox(k.current)
	if err != nil {
		return nil, err
	}
	if err := b.AcceptOld(k.old...); err != nil {
		return nil, err
	}
	return b, nil
}

// orgCodec is a runner's payload codec when the keys are org's keys.
func (k secretKeys) orgCodec(org string) (*codec.Codec, error) {
	return codec.NewOrg(org, k.current, k.old...)
}

// converters is what a Temporal client encodes payloads and failures with:
// a runner's org codec, or the control plane's.
type converters interface {
	DataConverter() converter.DataConverter
	FailureConverter() converter.FailureConverter
}

// temporalClientOptions completes the options of every client a process
// dials: every payload passes through the codec, failures are encoded with
// it, and the SDK's metrics go to the process's registry.
func temporalClientOptions(o client.Options, c converters) client.Options {
	o.DataConverter = c.DataConverter()
	o.FailureConverter = c.FailureConverter()
	o.MetricsHandler = metrics.SDKHandler()
	return o
}

// metricsSources reads task counts from the store and runner liveness from
// Temporal at scrape time. Runner IDs are per org: the hosts counted are
// those of org's runners (dev: its admin key's org; a server: the default
// org's).
func metricsSources(st store.Store, c client.Client, org string, runners []string) *metrics.Sources {
	return &metrics.Sources{
		TaskCounts: func(ctx context.Context) ([]metrics.TaskCount, error) {
			stats, err := st.TaskCounts(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]metrics.TaskCount, len(stats))
			for i, s := range stats {
				out[i] = metrics.TaskCount{Runner: s.RunnerID, Status: string(s.Status), Tasks: s.Tasks}
			}
			return out, nil
		},
		RunnerHosts: func(ctx context.Context, runner string) (int, error) {
			return runnerHosts(ctx, c, org, runner)
		},
		Runners: runners,
	}
}

// runnerOnlineWithin is how recent a poll must be for a host to count (the
// runners routes use the same bound).
const runnerOnlineWithin = 2 * time.Minute

func runnerHosts(ctx context.Context, c client.Client, org, runner string) (int, error) {
	resp, err := c.DescribeTaskQueue(ctx, task.RunnerTaskQueue(org, runner), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return 0, fmt.Errorf("describing runner %s's queue: %w", runner, err)
	}
	n := 0
	for _, p := range resp.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) <= runnerOnlineWithin {
			n++
		}
	}
	return n, nil
}

// countingLogs counts the log lines a runner writes through it.
type countingLogs struct{ activities.LogSink }

func (s countingLogs) AppendLogs(ctx context.Context, entries []store.LogEntry) error {
	if err := s.LogSink.AppendLogs(ctx, entries); err != nil {
		return err
	}
	countLines(entries)
	return nil
}

// countingStore counts the log lines written through it.
type countingStore struct{ store.Store }

func (s countingStore) AppendLogs(ctx context.Context, entries []store.LogEntry) error {
	if err := s.Store.AppendLogs(ctx, entries); err != nil {
		return err
	}
	countLines(entries)
	return nil
}

// RecordTransition counts the workflow's own lines, which arrive with
// their transition.
func (s countingStore) RecordTransition(ctx context.Context, r store.TransitionRecord) ([]store.Webhook, error) {
	hooks, err := s.Store.RecordTransition(ctx, r)
	if err == nil {
		countLines(r.Logs)
	}
	return hooks, err
}

func countLines(entries []store.LogEntry) {
	var byLevel [4]int
	for _, e := range entries {
		for i, l := range task.Levels {
			if e.Level == l {
				byLevel[i]++
			}
		}
	}
	for i, n := range byLevel {
		if n > 0 {
			metrics.LogLinesAppended(string(task.Levels[i]), n)
		}
	}
}

// observeDelivery counts a webhook or notify delivery attempt by outcome.
func observeDelivery(outcome, _ string) {
	switch outcome {
	case controlplane.OutcomeDelivered:
		metrics.WebhookDelivery(metrics.OutcomeSuccess)
	case controlplane.OutcomeFailed:
		metrics.WebhookDelivery(metrics.OutcomeError)
	default:
		metrics.WebhookDelivery(outcome)
	}
}

// serveMetrics serves reg at /metrics on a listener of its own.
func (s *stack) serveMetrics(addr string, reg *prometheus.Registry, log *zap.Logger) (string, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	srv, bound, err := serveHTTP(addr, mux, log)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	s.push("metrics http", func() error { return shutdownHTTP(srv) })
	return bound, nil
}
