package activities

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/terratask/terratask/internal/procgroup"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/task"
)

// Environment variables that mark the processes of a step, so the runner
// finds them (and their orphaned descendants) through /proc.
const (
	envTaskID = "TERRATASK_TASK_ID"
	envExecID = "TERRATASK_EXEC_ID"
)

// leftoverGrace is how long a process left behind gets between SIGTERM and
// SIGKILL.
const leftoverGrace = 2 * time.Second

// envNameRe is a portable environment variable name.
var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// runnerOwnedEnv are variables the runner sets itself; neither the host's
// environment nor a task's env may override them.
var runnerOwnedEnv = map[string]bool{
	"TF_CLI_CONFIG_FILE":  true,
	"TF_PLUGIN_CACHE_DIR": true,
	"TF_DATA_DIR":         true,
	"CHECKPOINT_DISABLE":  true,
}

// checkTaskEnv rejects env names the runner cannot pass: those terraform-exec
// manages (TF_VAR_*, TF_LOG, TF_CLI_ARGS...), the runner's own and invalid
// names. Names are not secret; values never appear in errors.
func checkTaskEnv(env map[string]string) error {
	for k := range env {
		switch {
		case !envNameRe.MatchString(k):
			return configErrorf("env: %q is not a valid environment variable name", k)
		case strings.HasPrefix(k, "TERRATASK_") || strings.HasPrefix(k, "TOFU_") || runnerOwnedEnv[k]:
			return configErrorf("env: %s is set by the runner and cannot be overridden", k)
		case len(tfexec.ProhibitedEnv(map[string]string{k: ""})) > 0:
			return configErrorf("env: %s cannot be set through env; pass Terraform variables in variables or sensitive_variables", k)
		}
	}
	return nil
}

// terraformEnv is the whole environment of a Terraform process: what it
// takes from the host's environment (hostEnv: with isolation on, only what
// the operator passes on by name, so cloud credentials of the runner host
// reach providers only when named), without what the runner or
// terraform-exec control, then the runner's
// settings, the task's env and the step's markers. TF_IN_AUTOMATION is set by
// terraform-exec, which forbids setting TF_INPUT; it passes -input=false to
// every command instead.
func (s *stepRun) terraformEnv() (map[string]string, error) {
	cliConfig, err := s.r.cliConfig()
	if err != nil {
		return nil, transientError("writing the Terraform CLI config", err)
	}
	env := tfexec.CleanEnv(s.r.hostEnv())
	env["TF_CLI_CONFIG_FILE"] = cliConfig
	env["TF_PLUGIN_CACHE_DIR"] = s.pluginCache()
	env["CHECKPOINT_DISABLE"] = "1"
	for k, v := range s.secrets.Env {
		env[k] = v
	}
	for k, v := range s.oidcEnv {
		env[k] = v
	}
	if s.usesHTTPBackend() {
		for k := range env {
			if strings.HasPrefix(k, httpBackendEnvPrefix) {
				delete(env, k)
			}
		}
		backend, err := s.httpBackendEnv()
		if err != nil {
			return nil, err
		}
		for k, v := range backend {
			env[k] = v
		}
	}
	env[envTaskID] = s.in.Task.ID
	env[envExecID] = s.execID
	if s.r.Sandbox.Active() {
		// Where the sandbox wrapper finds the step's sandbox (sandboxed).
		env[sandbox.EnvDir] = s.r.sandboxDir(s.execID)
	}
	return env, nil
}

// terraform returns a terraform-exec handle for dir whose stderr feeds the
// step's log. Every process it starts carries the step's marker.
func (s *stepRun) terraform(dir, execPath string) (*tfexec.Terraform, error) {
	if err := os.MkdirAll(s.pluginCache(), 0o755); err != nil {
		return nil, transientError("creating the plugin cache", err)
	}
	run, err := s.sandboxed(dir, execPath)
	if err != nil {
		return nil, err
	}
	tf, err := s.r.terraformHandle(s.in.Task.ID, dir, run)
	if err != nil {
		return nil, internalErrorf("preparing terraform: %v", err)
	}
	if err := s.setUpTerraform(tf, execPath, s.textDiags); err != nil {
		return nil, err
	}
	return tf, nil
}

// setUpTerraform gives a handle what every command of the step needs: the
// shared version check, the step's environment, its stop grace, and a
// stderr that feeds the step's log through diags.
func (s *stepRun) setUpTerraform(tf *tfexec.Terraform, execPath string, diags *textDiagnostics) error {
	s.r.st().versions.share(tf, execPath)
	tf.SetStdout(io.Discard)
	env, err := s.terraformEnv()
	if err != nil {
		return err
	}
	if err := tf.SetEnv(env); err != nil {
		return configErrorf("env: %v", err)
	}
	if err := tf.SetWaitDelay(s.r.stopGrace()); err != nil {
		return internalErrorf("preparing terraform: %v", err)
	}
	tf.SetStderr(&lineWriter{fn: func(line string) { stderrLine(s.book, diags, line) }})
	return nil
}

// uiWriter is the stdout of a -json command. Its first line tells the
// step's tracker to note the command's process group.
func (s *stepRun) uiWriter() *lineWriter {
	return &lineWriter{fn: func(line string) { uiLine(s.book, s.ui, line) }, onFirst: s.procs.Note}
}

// stopProcesses ends whatever the step's Terraform commands left running.
// Terraform stops its provisioner shells on SIGINT, but a shell's children
// are re-parented and would survive; they still carry the step's marker, or
// sit in a process group a marked process had.
func (s *stepRun) stopProcesses() {
	if n := s.procs.Stop(leftoverGrace); n > 0 {
		s.r.markDirty(s.in.Task.ID)
		s.book.runner(task.LevelWarn, "stopped %d process(es) that Terraform left running", n)
	}
}

// markDirty records that a step of the task may have left processes
// behind: its end scans every process of the task (see quiet).
func (r *Runner) markDirty(taskID string) {
	st := r.st()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.dirty) >= maxCachedTF {
		st.dirty = map[string]bool{}
	}
	st.dirty[taskID] = true
}

// quiet reports whether every step of the task ran in this process (which
// made its work dir) and ended with nothing left running: then no process
// of the task can be left on this host, and its end reads no /proc.
func (r *Runner) quiet(taskID string) bool {
	st := r.st()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.made[taskID] && !st.dirty[taskID]
}

// stopTaskLeftovers is the task's last look for processes left on this
// host, at its end (Cleanup, or an apply that cleans up): skipped when the
// task was quiet.
func (s *stepRun) stopTaskLeftovers() {
	if s.r.quiet(s.in.Task.ID) {
		return
	}
	s.stopLeftovers()
}

// stopLeftovers ends processes of this task that no step in this process
// owns: what a crashed runner process left behind on this host.
func (s *stepRun) stopLeftovers() {
	if n := s.r.stopTaskProcesses(s.in.Task.ID, true); n > 0 {
		s.book.runner(task.LevelWarn, "stopped %d process(es) left running by an earlier attempt of this task", n)
	}
}

// StopTaskProcesses ends every process this host runs for a task (Terraform
// and everything it started), SIGTERM then SIGKILL: the last resort of a
// forced cancel. It returns how many processes it found. (A function, not a
// Runner method: every exported Runner method is registered as an activity.)
func StopTaskProcesses(taskID string) int {
	return stopMarked(taskID, nil)
}

func (r *Runner) stopTaskProcesses(taskID string, onlyOrphans bool) int {
	if !onlyOrphans {
		return stopMarked(taskID, nil)
	}
	st := r.st()
	return stopMarked(taskID, func(exec string) bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.execs[exec]
	})
}

// stopMarked ends the processes marked with taskID whose exec marker live
// does not claim.
func stopMarked(taskID string, live func(exec string) bool) int {
	procs, err := procgroup.Find(func(p procgroup.Proc) bool {
		if !p.HasEnv(envTaskID, taskID) {
			return false
		}
		exec, _ := p.Getenv(envExecID)
		return live == nil || !live(exec)
	})
	if err != nil || len(procs) == 0 {
		return 0
	}
	procgroup.Terminate(procs, leftoverGrace)
	return len(procs)
}

// terraformPath is the binary chosen by Install, or, when a step runs
// without it, the one Install would choose.
func (s *stepRun) terraformPath(ctx context.Context) (string, error) {
	if p := s.in.TerraformPath; p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	res, err := s.r.install(ctx, s.in.Task.Params)
	if err != nil {
		return "", err
	}
	return res.Path, nil
}

// terraformHandle returns the task's terraform-exec handle for dir and
// binary, reusing the one of an earlier step (a task's steps run one after
// another, so a handle is never used by two commands at once).
func (r *Runner) terraformHandle(taskID, dir, execPath string) (*tfexec.Terraform, error) {
	st := r.st()
	st.mu.Lock()
	defer st.mu.Unlock()
	if c, ok := st.tfs[taskID]; ok && c.dir == dir && c.execPath == execPath {
		return c.tf, nil
	}
	tf, err := tfexec.NewTerraform(dir, execPath)
	if err != nil {
		return nil, err
	}
	if st.tfs == nil || len(st.tfs) >= maxCachedTF {
		st.tfs = map[string]*cachedTF{}
	}
	st.tfs[taskID] = &cachedTF{dir: dir, execPath: execPath, tf: tf}
	return tf, nil
}

// forgetTerraform drops a task's cached handle.
func (r *Runner) forgetTerraform(taskID string) {
	st := r.st()
	st.mu.Lock()
	delete(st.tfs, taskID)
	st.mu.Unlock()
}
