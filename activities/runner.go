// Package activities holds the Temporal activities of a runner host: the
// steps that claim a task, install Terraform and run init, plan and apply
// for it (methods of Runner), and the types the task workflow passes them.
// It runs on runner hosts, which hold only their org's key: the control
// plane's activities are package controlplane, and nothing this package
// imports holds the master key, a store driver or the server (the test of
// package boundary keeps it so).
package activities

import (
	"context"
	"fmt"
	"github.com/hashicorp/terraform-exec/tfexec"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/internal/rwlock"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/internal/tfinstall"
	"github.com/terratask/terratask/internal/watchdog"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// LogSink receives a task's log entries. Appending is idempotent on (TaskID,
// Stream, Seq), so entries may be sent again after a crash. store.Store
// satisfies it.
type LogSink interface {
	AppendLogs(ctx context.Context, entries []store.LogEntry) error
}

// PlanKeeper keeps the plans tasks make: the reviewable plan and the sealed
// plan file an approved task applies. store.Store satisfies it.
type PlanKeeper interface {
	PutPlan(ctx context.Context, p store.Plan) error
	PutPlanFile(ctx context.Context, f store.PlanFile) error
	GetPlanFile(ctx context.Context, org, id string) (store.PlanFile, error)
}

// CredentialSource delivers the credential sets a step of a task uses:
// each set's values still sealed under the org's key, after checking that
// the task's agent, its workspace and this runner may use it now; a set
// that may not is a *store.CredentialRefusedError. runnerapi.Client (over
// the runner API) and store.LocalCredentials (for runners that hold the
// store) satisfy it.
type CredentialSource interface {
	TaskCredentials(ctx context.Context, req store.CredentialRequest) ([]store.CredentialDelivery, error)
}

// Runner executes the Terraform steps of tasks on one runner host. Its
// methods are the runner activities; its fields are their dependencies.
//
// Layout under DataDir:
//
//	work/<task-id>/               a task's work dir (0700), removed by Cleanup
//	work/<task-id>/config/        the Terraform configuration Terraform runs in
//	work/<task-id>/.terratask/    private: var file, saved plan, log spool
//	state/<org>/<workspace>/      local state, kept across tasks
//	plugin-cache/                 Terraform's shared provider cache
//	plugin-cache-opentofu/        OpenTofu's (and plugin-cache-opentofu.lock)
//	plugin-cache/.terratask-warm/ keys of inits that only read the cache
//	plugin-cache.lock             the cache's lock between processes (initlock.go)
//	terraform/<version>/          Terraform binaries installed by the runner
//	terraform.rc                  the generated Terraform CLI config
//	sandbox/<exec-id>/            a running step's sandbox wrapper (sandbox.go)
type Runner struct {
	// Org is the org the runner belongs to: it serves that org's tasks
	// only (task.RunnerTaskQueue), and Secrets holds that org's key.
	Org      string
	RunnerID string
	// HostID is this host's stable ID; later steps of a task run on
	// task.HostTaskQueue(Org, RunnerID, HostID).
	HostID  string
	DataDir string
	// ModulesDir is the module catalog: a task's `module` names a
	// subdirectory of it.
	ModulesDir string
	// DefaultModule is the module used when a task names no module, source
	// or files; "" means such a task fails with a configuration_error.
	DefaultModule string
	// SourceRoots are the directories a local-path `source` must lie in.
	SourceRoots []string
	// SourceAllow lists the hosts a remote `source` may name
	// (--source-allow); empty: remote sources are refused.
	SourceAllow events.AllowList
	Logs        LogSink
	// Plans keeps the plans of tasks (usually the same store as Logs):
	// every plan for review, and the sealed plan file of a plan that waits
	// for approval. A runner without it cannot run tasks that wait.
	Plans PlanKeeper
	// Credentials delivers the credential sets of tasks that use some
	// (credentials.go); a runner without it fails their steps.
	Credentials CredentialSource
	// Tokens mints the OIDC tokens of credential sets with oidc
	// (oidctoken.go); a runner without it fails their steps.
	Tokens  TokenSource
	Secrets *secret.Box
	// Progress, when set, is called at a heartbeat tick when resource counts
	// changed (the worker wires it to the task workflow's progress signal).
	Progress func(ctx context.Context, workflowID, runID string, p task.Progress) error
	Logger   *zap.Logger
	// HeartbeatEvery is the tick of heartbeats, log flushes and progress
	// reports; default 2s.
	HeartbeatEvery time.Duration
	// Heartbeat, when set, sends a heartbeat of the running activity whose
	// task token is given and returns the server's answer (the worker wires
	// it to client.RecordActivityHeartbeat). Steps then tell a failed RPC
	// from the server's verdict (heartbeat.go); without it they use the
	// SDK's activity.RecordHeartbeat, which cancels a step on any failed RPC.
	Heartbeat func(ctx context.Context, taskToken []byte, details ...any) error

	// Sandbox runs every engine command of a step in a sandbox (see
	// sandbox.go); nil or inactive runs them unsandboxed.
	Sandbox *sandbox.Sandbox
	// TaskEnded, when set, reports whether the task has ended (or does
	// not exist); the janitor removes the work dirs of ended tasks
	// (janitor.go).
	TaskEnded func(ctx context.Context, org, id string) (bool, error)
	// Watchdog, with an active Sandbox, kills a step's sandboxes when its
	// lease runs out (lease.go); nil leaves a stalled runner's commands
	// running.
	Watchdog *watchdog.Client
	// PassEnv names the runner's environment variables that engine
	// commands get when isolation is on (NAME, or PREFIX*), such as a host's
	// cloud credentials; see hostEnv.
	PassEnv []string

	// StopGrace is how long Terraform may take to stop after SIGINT before
	// it is killed; default 30s.
	StopGrace time.Duration
	// LockTimeout is how long plan and apply wait for the state lock;
	// default 1m.
	LockTimeout time.Duration
	// CLIConfigFile is the Terraform CLI config to use (for example one with
	// a provider mirror); "" means a generated DataDir/terraform.rc.
	CLIConfigFile string
	// DisableDownload stops Install from downloading Terraform releases.
	DisableDownload bool
	// TofuPaths are where tasks with engine opentofu find `tofu` before
	// PATH: binaries, or directories holding tofu or one subdirectory per
	// version (see tfinstall.TofuFinder). OpenTofu is never downloaded.
	TofuPaths []string
	// StateDir holds local state per (org, workspace) when the module has
	// no backend of its own (default DataDir/state). Hosts of one runner ID
	// that share it (a shared volume) share state, so a task resumed on
	// another host sees what the first one applied.
	StateDir string
	// StateURL is the base URL of a terratask server (http://host:8080)
	// whose HTTP state backend keeps the state of tasks whose configuration
	// declares no backend of its own; "" keeps it in StateDir instead.
	// Requires Secrets: the task's state credential derives from its key.
	StateURL string

	once  sync.Once
	state *runnerState
}

// runnerState is the in-process state shared by a Runner's activities.
type runnerState struct {
	installer *tfinstall.Installer
	tofu      *tfinstall.TofuFinder
	// initLock is the plugin cache lock in this process (a file lock
	// extends it to processes sharing the data dir); see initlock.go.
	initLock rwlock.Mutex

	mu sync.Mutex
	// execs are the exec markers of steps running in this process, so
	// leftover cleanup never touches a live step's processes.
	execs map[string]bool
	// spools are the log spools of steps running in this process, which
	// recovery leaves to their own books.
	spools map[string]bool
	// proxy is the loopback proxy to the state backend, started on first
	// use (proxyErr if that failed).
	proxyOnce sync.Once
	proxy     *stateProxy
	proxyErr  error
	// tfs keeps a task's terraform-exec handle across its steps: the handle
	// caches `terraform version`, which it would otherwise run again before
	// every command (about 100 ms each). Keyed by task ID; Cleanup drops it.
	tfs map[string]*cachedTF
	// made are the tasks whose work dir this process created: no earlier
	// process ran them here (see Init); dirty those of which a step may
	// have left processes behind (see Runner.quiet).
	made, dirty map[string]bool
	// active counts the steps of each task running in this process.
	active map[string]int
	// versions is each binary's `terraform version`, given to every new
	// handle (tfversion.go).
	versions binaryVersions
}

// cachedTF is a terraform-exec handle for one task's dir and binary.
type cachedTF struct {
	dir, execPath string
	tf            *tfexec.Terraform
}

// maxCachedTF bounds the handle cache; tasks that moved to another host
// never reach Cleanup here.
const maxCachedTF = 1024

func (r *Runner) st() *runnerState {
	r.once.Do(func() {
		r.state = &runnerState{
			installer: tfinstall.New(tfinstall.Options{
				Dir:             filepath.Join(r.dataDir(), "terraform"),
				DisableDownload: r.DisableDownload,
			}),
			tofu:   tfinstall.NewTofuFinder(r.TofuPaths),
			execs:  map[string]bool{},
			spools: map[string]bool{},
			made:   map[string]bool{},
			dirty:  map[string]bool{},
			active: map[string]int{},
		}
	})
	return r.state
}

// stateProxy returns the runner's state proxy, starting it on first use.
func (r *Runner) stateProxy() (*stateProxy, error) {
	st := r.st()
	st.proxyOnce.Do(func() { st.proxy, st.proxyErr = startStateProxy() })
	return st.proxy, st.proxyErr
}

func (r *Runner) logger() *zap.Logger {
	if r.Logger == nil {
		return zap.NewNop()
	}
	return r.Logger
}

func (r *Runner) heartbeatEvery() time.Duration {
	if r.HeartbeatEvery > 0 {
		return r.HeartbeatEvery
	}
	return 2 * time.Second
}

func (r *Runner) stopGrace() time.Duration {
	if r.StopGrace > 0 {
		return r.StopGrace
	}
	return 30 * time.Second
}

func (r *Runner) lockTimeout() string {
	d := r.LockTimeout
	if d <= 0 {
		d = time.Minute
	}
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}

func (r *Runner) dataDir() string {
	d, err := filepath.Abs(r.DataDir)
	if err != nil {
		return filepath.Clean(r.DataDir)
	}
	return d
}

// pluginCacheDir is Terraform's shared provider cache.
func (r *Runner) pluginCacheDir() string { return r.pluginCacheDirOf(task.EngineTerraform) }

// pluginCacheDirOf is an engine's shared provider cache: each engine has its
// own (see initlock.go).
func (r *Runner) pluginCacheDirOf(e task.Engine) string {
	if e == task.EngineOpenTofu {
		return filepath.Join(r.dataDir(), "plugin-cache-opentofu")
	}
	return filepath.Join(r.dataDir(), "plugin-cache")
}

// pluginCache is the provider cache of the step's engine.
func (s *stepRun) pluginCache() string {
	return s.r.pluginCacheDirOf(s.in.Task.Params.EffectiveEngine())
}

// nameRe is what a task ID, org or workspace must look like to become one
// path component: it cannot be empty, ".", ".." or contain a separator.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// taskPaths are the paths of one task's work dir.
type taskPaths struct {
	work     string // DataDir/work/<task-id>
	private  string // work/.terratask: var file, plan, log spool
	config   string // work/config: where Terraform runs
	varFile  string
	planFile string
	// backendMark exists while the configuration runs on the runner's HTTP
	// state backend (Init decided so); it holds "http".
	backendMark string
	// reviewMark holds the digest of a saved plan the apply step shows for
	// review, and reviewFile is the link to it that the review reads
	// (review.go).
	reviewMark, reviewFile string
}

func (r *Runner) paths(taskID string) (taskPaths, error) {
	// The ID of a task started by a schedule holds ':' (see task.SafeName).
	name := task.SafeName(taskID)
	if !nameRe.MatchString(name) {
		return taskPaths{}, configErrorf("invalid task id %q", taskID)
	}
	work := filepath.Join(r.dataDir(), "work", name)
	priv := filepath.Join(work, ".terratask")
	return taskPaths{
		work:        work,
		private:     priv,
		config:      filepath.Join(work, "config"),
		varFile:     filepath.Join(priv, "vars.tfvars.json"),
		planFile:    filepath.Join(priv, "plan.tfplan"),
		backendMark: filepath.Join(priv, "state-backend"),
		reviewMark:  filepath.Join(priv, "review-pending"),
		reviewFile:  filepath.Join(priv, "review.tfplan"),
	}, nil
}

// stateDir is the directory of the local state of (org, workspace).
func (r *Runner) stateDir(in task.Input) (string, error) {
	org, ws := stateWorkspace(in)
	if !nameRe.MatchString(org) {
		return "", configErrorf("invalid org %q: use letters, digits, '.', '_' and '-'", org)
	}
	if !nameRe.MatchString(ws) {
		return "", configErrorf("invalid workspace %q: use letters, digits, '.', '_' and '-' (at most 128)", ws)
	}
	root := r.StateDir
	if root == "" {
		root = filepath.Join(r.dataDir(), "state")
	}
	return filepath.Join(root, org, ws), nil
}

// cliConfig returns the Terraform CLI config file, writing the generated one
// when the runner has none configured.
func (r *Runner) cliConfig() (string, error) {
	if r.CLIConfigFile != "" {
		return r.CLIConfigFile, nil
	}
	path := filepath.Join(r.dataDir(), "terraform.rc")
	want := []byte("# Generated by terratask; set the runner's CLI config to replace it.\ndisable_checkpoint = true\n")
	if b, err := os.ReadFile(path); err == nil && string(b) == string(want) {
		return path, nil
	}
	if err := os.MkdirAll(r.dataDir(), 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, want, 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
