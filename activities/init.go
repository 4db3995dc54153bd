package activities

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	"go.temporal.io/sdk/activity"

	"github.com/terratask/terratask/task"
)

// Init prepares the task's work dir and runs `terraform init`.
//
// The configuration comes from exactly one of the task's module (a catalog
// subdirectory), source (a local path inside SourceRoots, copied; anything
// else through `terraform init -from-module`, from a host SourceAllow
// lists) or files (inline), else the
// runner's DefaultModule. Each run starts from a fresh configuration dir.
// Unless the configuration declares a backend of its own, state lives per
// (org, workspace) on the server's HTTP backend, or on the runner when it
// has no StateURL (see statebackend.go).
func (r *Runner) Init(ctx context.Context, in StepInput) (err error) {
	s, err := r.begin(ctx, in, task.StepInitializing, true)
	ctx = s.ctx
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return err
	}
	if err := checkTaskEnv(s.secrets.Env); err != nil {
		return err
	}
	if !r.madeHere(in.Task.ID) || in.Run > 1 || activity.GetInfo(ctx).Attempt > 1 {
		// An earlier attempt of the task may have run here, in a
		// process that is gone; a first attempt in the process that made
		// the task's work dir has nothing to stop.
		s.stopLeftovers()
	}
	tfPath, err := s.terraformPath(ctx)
	if err != nil {
		return err
	}

	p := s.paths
	if err := s.resetConfigDir(); err != nil {
		return err
	}
	remote, err := s.populateConfig()
	if err != nil {
		return err
	}

	// A configuration in hand (not fetched by init) gets its backend now, so
	// that an identical one initialised before lends its working directory
	// (inittemplate.go).
	template := ""
	if remote == "" {
		own, err := s.setupBackend(ctx)
		if err != nil {
			return err
		}
		if !own {
			if template, err = s.templateKey(tfPath); err != nil {
				s.book.runner(task.LevelDebug, "init: no key for reuse (%v)", err)
				template = ""
			} else if s.useTemplate(template) {
				return nil
			}
		}
	}

	cache, err := s.holdPluginCache(ctx, tfPath, remote != "")
	if err != nil {
		return err
	}
	defer func() { cache.release(err) }()

	tf, err := s.terraform(p.config, tfPath)
	if err != nil {
		return err
	}
	if remote != "" {
		s.book.runner(task.LevelInfo, "fetching configuration from %s", remote)
		if err := s.initJSON(ctx, tf, tfexec.FromModule(remote), tfexec.Backend(false)); err != nil {
			return err
		}
		if _, err := s.setupBackend(ctx); err != nil {
			return err
		}
		// The handle's environment now carries the backend's addresses.
		if tf, err = s.terraform(p.config, tfPath); err != nil {
			return err
		}
	}
	if err := s.initJSON(ctx, tf); err != nil {
		return err
	}
	if template != "" {
		s.saveTemplate(template)
	}
	return nil
}

// setupBackend points the configuration at the runner's state backend,
// unless it declares its own (own).
//
// Unless the configuration declares a backend of its own, state lives per
// (org, workspace) on the server's HTTP backend, or on the runner when it
// has no StateURL (see statebackend.go).
func (s *stepRun) setupBackend(ctx context.Context) (own bool, err error) {
	p := s.paths
	own, err = declaresBackend(p.config)
	if err != nil {
		return false, transientError("reading the configuration", err)
	}
	switch {
	case own:
		s.book.runner(task.LevelWarn, "the configuration declares its own backend; the runner does not manage its state")
	case s.r.StateURL != "":
		org, ws := stateWorkspace(s.in.Task)
		if err := writeHTTPBackend(p.config); err != nil {
			return false, transientError("writing the backend config", err)
		}
		if err := os.WriteFile(p.backendMark, []byte("http"), 0o600); err != nil {
			return false, transientError("writing the backend config", err)
		}
		if err := s.adoptLocalState(ctx); err != nil {
			return false, err
		}
		s.book.runner(task.LevelInfo, "state: workspace %s/%s on the terratask server", org, ws)
	default:
		stateDir, err := s.r.stateDir(s.in.Task)
		if err != nil {
			return false, err
		}
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return false, transientError("creating the state dir", err)
		}
		if err := writeBackend(p.config, filepath.Join(stateDir, "terraform.tfstate")); err != nil {
			return false, transientError("writing the backend config", err)
		}
		s.book.runner(task.LevelInfo, "state: workspace %s/%s on this runner", filepath.Base(filepath.Dir(stateDir)), filepath.Base(stateDir))
	}
	return own, nil
}

// resetConfigDir removes what an earlier run left (configuration, .terraform,
// var file, plan) and creates an empty configuration dir. The log spools
// stay: begin has re-sent them.
func (s *stepRun) resetConfigDir() error {
	p := s.paths
	for _, path := range []string{p.config, p.varFile, p.planFile, p.backendMark, p.reviewMark, p.reviewFile} {
		if err := os.RemoveAll(path); err != nil {
			return transientError("cleaning the work dir", err)
		}
	}
	if err := mkdirPrivate(p.work, p.private, p.config); err != nil {
		return transientError("creating the work dir", err)
	}
	return nil
}

// populateConfig fills the configuration dir. For a remote source it returns
// the address for `terraform init -from-module` instead.
func (s *stepRun) populateConfig() (remote string, err error) {
	params := s.in.Task.Params
	given := 0
	for _, set := range []bool{params.Module != "", params.Source != "", len(params.Files) > 0} {
		if set {
			given++
		}
	}
	if given > 1 {
		return "", configErrorf("give only one of module, source and files")
	}
	dir := s.paths.config
	switch {
	case params.Module != "":
		if err := checkModuleName(params.Module); err != nil {
			return "", err
		}
		if s.r.ModulesDir == "" {
			return "", configErrorf("module: this runner has no module catalog")
		}
		src := filepath.Join(s.r.ModulesDir, params.Module)
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			return "", configErrorf("module: %q is not in this runner's catalog", params.Module)
		}
		s.book.runner(task.LevelInfo, "configuration: module %s from the runner's catalog", params.Module)
		return "", copyModule(src, dir)
	case params.Source != "" && isLocalSource(params.Source):
		real, err := resolveLocalSource(params.Source, s.r.SourceRoots)
		if err != nil {
			return "", err
		}
		s.book.runner(task.LevelInfo, "configuration: copied from %s", params.Source)
		return "", copyModule(real, dir)
	case params.Source != "":
		if err := checkRemoteSource(params.Source); err != nil {
			return "", err
		}
		if err := checkSourceHost(params, s.r.SourceAllow); err != nil {
			return "", err
		}
		return params.Source, nil
	case len(params.Files) > 0:
		s.book.runner(task.LevelInfo, "configuration: %d inline file(s)", len(params.Files))
		return "", writeFiles(dir, params.Files)
	case s.r.DefaultModule != "":
		s.book.runner(task.LevelInfo, "configuration: the runner's default module")
		return "", copyModule(s.r.DefaultModule, dir)
	}
	return "", configErrorf("no module, source or files given and the runner has no default module")
}

// initJSON runs `terraform init -json` (plain init for Terraform before
// 1.9, whose lines are logged as they come). A failure whose diagnostics
// point into the configuration is a configuration_error; any other (a
// provider or module that cannot be fetched) a terraform_error.
func (s *stepRun) initJSON(ctx context.Context, tf *tfexec.Terraform, opts ...tfexec.InitOption) error {
	w := s.uiWriter()
	start := time.Now()
	err := tf.InitJSON(ctx, w, opts...)
	var mismatch *tfexec.ErrVersionMismatch
	if errors.As(err, &mismatch) {
		tf.SetStdout(w)
		err = tf.Init(ctx, opts...)
	}
	observeCommand(ctx, "init", start, err)
	w.flushPartial()
	s.textDiags.flush()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	diags := s.ui.diagnostics()
	code := task.CodeTerraform
	for _, d := range diags {
		// "<main configuration>" stands for the -from-module address, not
		// a file.
		if d.File != "" && !strings.HasPrefix(d.File, "<") {
			code = task.CodeConfig
		}
	}
	return terraformError(code, "init", err, diags)
}

// madeHere reports whether this process created the task's work dir.
func (r *Runner) madeHere(taskID string) bool {
	st := r.st()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.made[taskID]
}
