package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/internal/devtls"
)

// ModuleRoot returns the directory of terratask's go.mod, searching up from
// dir.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/terratask/terratask\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the terratask module (no go.mod of github.com/terratask/terratask above the current directory)")
		}
		dir = parent
	}
}

// BuildTerratask builds cmd/terratask of the module at root into dir and
// returns the binary's path.
func BuildTerratask(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "terratask")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/terratask")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/terratask: %v\n%s", err, out)
	}
	return bin, nil
}

// Dev is a running `terratask dev` child process.
type Dev struct {
	cmd      *exec.Cmd
	DataDir  string
	Key      string
	API      string // http://host:port
	Temporal string // host:port of the embedded Temporal frontend
	output   *lockedBuffer
	done     chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Keep the tail only: a long run must not grow without bound.
	if l.b.Len() > 1<<20 {
		rest := l.b.Bytes()[l.b.Len()-(512<<10):]
		l.b = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// DevOptions start a dev process.
type DevOptions struct {
	Bin     string
	DataDir string
	Key     string
	// PathPrefix, when set, is put first on the child's PATH (the breakdown
	// puts a recording terraform wrapper there).
	PathPrefix string
	// StartTimeout bounds the wait for the banner; default 3 minutes.
	StartTimeout time.Duration
	// Env is added to the child's environment.
	Env []string
	// Isolation is dev's --isolation; default strict: the figures are
	// those of sandboxed task code.
	Isolation string
	// OnDemand leaves out --runner local: dev then serves runner local of
	// its own org and starts a runner for any other (org, runner ID) a
	// task names (the policy rows' second org).
	OnDemand bool
	// Args are added to dev's command line.
	Args []string
}

// StartDev starts `terratask dev` on free ports (the Temporal UI too, as a
// developer runs it) and waits for its banner.
func StartDev(o DevOptions) (*Dev, error) {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	args := []string{"dev", "--data-dir", o.DataDir, "--http-address", "127.0.0.1:0",
		"--temporal-address", "127.0.0.1:0", "--ui-address", "127.0.0.1:0", "--log-level", "warn",
		"--isolation", cmp.Or(o.Isolation, "strict")}
	if !o.OnDemand {
		// Only the runner local: the create phase's tasks name a runner
		// nobody serves, which dev would otherwise start on demand.
		args = append(args, "--runner", "local")
	}
	args = append(args, o.Args...)
	cmd := exec.Command(o.Bin, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TERRATASK_") {
			continue
		}
		if o.PathPrefix != "" && strings.HasPrefix(kv, "PATH=") {
			kv = "PATH=" + o.PathPrefix + string(os.PathListSeparator) + strings.TrimPrefix(kv, "PATH=")
		}
		env = append(env, kv)
	}
	cmd.Env = append(append(env, o.Env...), "TERRATASK_API_KEY="+o.Key, "TF_CLI_CONFIG_FILE=/dev/null")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	out := &lockedBuffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Dev{cmd: cmd, DataDir: o.DataDir, Key: o.Key, output: out, done: make(chan error, 1)}
	ready := make(chan struct{})
	var api, temporal string
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			t := strings.TrimSpace(line)
			switch {
			case signalled:
			case strings.HasPrefix(t, "API:"):
				api = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(t, "API:")), "/api/v1/tasks")
			case strings.HasPrefix(t, "Temporal:"):
				if f := strings.Fields(strings.TrimPrefix(t, "Temporal:")); len(f) > 0 {
					temporal = f[0]
				}
			case strings.HasPrefix(t, "Admin key:"):
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { d.done <- cmd.Wait() }()
	select {
	case <-ready:
		if api == "" || temporal == "" {
			_ = d.Kill()
			return nil, fmt.Errorf("terratask dev banner without API or Temporal address:\n%s", out.String())
		}
		d.API, d.Temporal = api, temporal
		return d, nil
	case err := <-d.done:
		return nil, fmt.Errorf("terratask dev exited early: %v\n%s", err, out.String())
	case <-time.After(o.StartTimeout):
		_ = cmd.Process.Kill()
		<-d.done
		return nil, fmt.Errorf("terratask dev did not start within %s\n%s", o.StartTimeout, out.String())
	}
}

// PID is the dev process's ID.
func (d *Dev) PID() int { return d.cmd.Process.Pid }

// Output is the tail of what the process printed.
func (d *Dev) Output() string { return d.output.String() }

// Stop sends SIGTERM and waits up to a minute for a clean exit, then kills.
func (d *Dev) Stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		err := <-d.done
		d.done <- err
		return fmt.Errorf("terratask dev did not stop within a minute of SIGTERM")
	}
}

// Kill kills the process and waits for it.
func (d *Dev) Kill() error {
	_ = d.cmd.Process.Kill()
	err := <-d.done
	d.done <- err
	return err
}

// Exited reports whether the process has ended.
func (d *Dev) Exited() bool {
	select {
	case err := <-d.done:
		d.done <- err
		return true
	default:
		return false
	}
}

// temporalOptions are the options of a client of d's embedded Temporal,
// which speaks mutual TLS with the certificates dev made.
func (d *Dev) temporalOptions() (client.Options, error) {
	conf, err := devtls.FilesIn(filepath.Join(d.DataDir, devtls.DirName)).ClientConfig()
	if err != nil {
		return client.Options{}, err
	}
	return client.Options{HostPort: d.Temporal, Namespace: "default", Logger: nopLogger{},
		ConnectionOptions: client.ConnectionOptions{TLS: conf}}, nil
}
