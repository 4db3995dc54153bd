package worker

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/store"
)

// HostRefresh is how often a runner host rewrites its row of the store's
// runner_hosts (what it offers, and that it is still there).
const HostRefresh = 30 * time.Second

// RunnerIdentity is the Temporal worker identity of a runner host's
// workers; the runners routes match pollers to host rows by it.
func RunnerIdentity(r *activities.Runner) string {
	return fmt.Sprintf("%s@%s/pid-%d", r.RunnerID, r.HostID, os.Getpid())
}

// PublishHost writes the host's row (the engines and versions it offers)
// every HostRefresh until ctx ends, so every API replica reads what a
// runner offers from the store. A failed write is logged and retried at the
// next tick. Write the first row with PublishHostOnce.
func PublishHost(ctx context.Context, st HostPublisher, r *activities.Runner, started time.Time, log *zap.Logger) {
	t := time.NewTicker(HostRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			PublishHostOnce(ctx, st, r, started, log)
		}
	}
}

// HostPublisher writes a host's row: the store, or a runner's client of
// the runner API (internal/runnerapi).
type HostPublisher interface {
	PutRunnerHost(ctx context.Context, h store.RunnerHost) error
}

// PublishHostOnce writes the host's row now.
func PublishHostOnce(ctx context.Context, st HostPublisher, r *activities.Runner, started time.Time, log *zap.Logger) {
	h := store.RunnerHost{Org: r.Org, RunnerID: r.RunnerID, HostID: r.HostID, Identity: RunnerIdentity(r),
		Engines: activities.Engines(ctx, r), StartedAt: started.UTC(), UpdatedAt: time.Now().UTC()}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := st.PutRunnerHost(wctx, h); err != nil && ctx.Err() == nil {
		log.Warn("publishing the runner host's engines", zap.Error(err))
	}
}
