package app

import (
	"context"

	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/metrics"
)

// IsolationOptions are how a process's runners isolate task code
// (--isolation, --pass-env; README, Isolation).
type IsolationOptions struct {
	// Mode is strict, auto or off; "" takes the process's default.
	Mode sandbox.Mode
	// PassEnv names the runner's environment variables task code gets
	// (NAME or PREFIX*), such as a host's cloud credentials.
	PassEnv []string
}

// startIsolation probes the sandbox once for the process: strict without a
// working sandbox is an error; auto without one and off are logged loudly
// and shown in the runner_isolation metric (and dev's /readyz).
func startIsolation(ctx context.Context, o IsolationOptions, def sandbox.Mode, probeDir string, log *zap.Logger) (*sandbox.Sandbox, error) {
	if err := activities.CheckPassEnv(o.PassEnv); err != nil {
		return nil, err
	}
	mode := o.Mode
	if mode == "" {
		mode = def
	}
	sb, err := sandbox.New(ctx, sandbox.Options{Mode: mode, ProbeDir: probeDir})
	if err != nil {
		return nil, err
	}
	metrics.SetIsolation(string(mode), sb.Active())
	switch {
	case sb.Active():
		log.Info("task code runs sandboxed", zap.String("isolation", string(mode)), zap.String("sandbox", sb.Status()), zap.Strings("pass_env", o.PassEnv))
	case mode == sandbox.Off:
		log.Warn("ISOLATION IS OFF: task code (provisioners, external programs, providers) runs with this process's power: it can read its keys, other tasks' secrets and state (--isolation off)")
	default:
		log.Warn("ISOLATION UNAVAILABLE: task code runs unsandboxed with this process's power (--isolation auto); install bubblewrap or allow user namespaces, or start with --isolation strict to refuse", zap.String("reason", sb.Reason()))
	}
	return sb, nil
}
