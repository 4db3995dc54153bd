package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/internal/watchdog"
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/store"
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
	sb, err := sandbox.New(ctx, sandbox.Options{Mode: mode, Dir: probeDir})
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

// privateDataDir makes dir (a dev's or runner's data dir) private: every
// file this process creates from now on is 0600 and every directory 0700
// (the process's umask), and what an earlier version left in dir's top two
// levels more open is closed. The data dir holds keys, stores and task
// secrets.
func privateDataDir(dir string) error {
	restrictUmask()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile
		}
		if rel, _ := filepath.Rel(dir, path); strings.Count(rel, string(filepath.Separator)) > 1 {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		mode := os.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		} else if info, err := d.Info(); err == nil && info.Mode()&0o100 != 0 {
			mode = 0o700
		}
		if info, err := d.Info(); err == nil && info.Mode().Perm()&^mode != 0 {
			_ = os.Chmod(path, info.Mode().Perm()&mode)
		}
		return nil
	})
}

// startWatchdog starts the process's watchdog (package watchdog): with
// engine commands sandboxed, it kills a step's sandboxes when the runner
// stops renewing the step's lease. Without a sandbox there is nothing it
// could kill, and none starts.
func startWatchdog(sb *sandbox.Sandbox, log *zap.Logger) (*watchdog.Client, error) {
	if !sb.Active() {
		log.Warn("no watchdog: without a sandbox, a stalled runner's Terraform is not stopped when its lease runs out")
		return nil, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting the watchdog: %w", err)
	}
	return watchdog.New(exe, []string{watchdog.Command}, &logWriter{log: log.Named("watchdog")})
}

// logWriter logs each line written to it as a warning (the watchdog only
// speaks when it kills or fails).
type logWriter struct {
	log *zap.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Warn(strings.TrimPrefix(string(w.buf[:i]), "terratask watchdog: "))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.log.Warn(string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}

// janitorEvery is how often a runner sweeps what tasks that moved on left
// in its data dir (activities.Sweep); it also sweeps at start.
const janitorEvery = 10 * time.Minute

// storeTaskEnded asks the store whether a task has ended (or is gone).
func storeTaskEnded(st store.Store) func(ctx context.Context, org, id string) (bool, error) {
	return func(ctx context.Context, org, id string) (bool, error) {
		t, err := st.GetTask(ctx, org, id)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return t.Status.Terminal(), nil
	}
}

// startJanitor runs r's janitor until the returned stop is called; the
// janitor asks ended whether a task has ended.
func startJanitor(r *activities.Runner, ended func(ctx context.Context, org, id string) (bool, error)) func() error {
	r.TaskEnded = ended
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		activities.Janitor(ctx, r, janitorEvery)
	}()
	return func() error {
		cancel()
		<-done
		return nil
	}
}

// closers are stop functions added while the process runs (the janitors of
// on-demand runners), closed together.
type closers struct {
	mu sync.Mutex
	fs []func() error
}

func (c *closers) add(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fs = append(c.fs, f)
}

func (c *closers) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, f := range c.fs {
		errs = append(errs, f())
	}
	c.fs = nil
	return errors.Join(errs...)
}
