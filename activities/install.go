package activities

import (
	"context"
	"errors"
	"strings"

	"github.com/terratask/terratask/internal/tfinstall"
	"github.com/terratask/terratask/task"
)

// Install chooses the binary of the task's engine.
//
// Terraform (terraform_version, "" = any): one on PATH, then one installed
// under DataDir/terraform, then a download into it (see internal/tfinstall).
// Failing all three is a non-retryable install_failed error that lists what
// was tried.
//
// OpenTofu (tofu_version, "" = the first found): one of the runner's
// TofuPaths, then PATH; it is never downloaded. Failing both is a
// non-retryable engine_unavailable error that lists what was tried.
//
// The task workflow runs it inside Claim since its "claim-install" version.
func (r *Runner) Install(ctx context.Context, in StepInput) (out InstallOutput, err error) {
	s, err := r.begin(ctx, in, task.StepInstalling, true)
	ctx = s.ctx
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return out, err
	}
	return s.install(ctx)
}

// install runs the installing step in s.
func (s *stepRun) install(ctx context.Context) (InstallOutput, error) {
	engine := s.in.Task.Params.EffectiveEngine()
	res, err := s.r.install(ctx, s.in.Task.Params)
	if err != nil {
		return InstallOutput{}, err
	}
	where := res.Source
	if engine == task.EngineTerraform {
		where = map[string]string{"path": "found on PATH", "cache": "installed on this runner", "download": "downloaded"}[res.Source]
	}
	s.book.runner(task.LevelInfo, "using %s %s at %s (%s)", engine.Binary(), res.Version, res.Path, where)
	return InstallOutput{TerraformPath: res.Path, Version: res.Version, Engine: engine}, nil
}

// install finds the binary of the task's engine and version; see Install.
func (r *Runner) install(ctx context.Context, p task.Params) (tfinstall.Result, error) {
	var (
		res tfinstall.Result
		err error
	)
	switch engine := p.EffectiveEngine(); engine {
	case task.EngineTerraform:
		res, err = r.st().installer.Ensure(ctx, p.TerraformVersion)
	case task.EngineOpenTofu:
		res, err = r.st().tofu.Find(ctx, p.TofuVersion)
	default:
		return res, &stepError{code: task.CodeEngineUnavailable, msg: "engine: " + string(engine) + " is not an engine this runner knows (terraform, opentofu)"}
	}
	var (
		ie *tfinstall.InstallError
		ee *tfinstall.EngineError
	)
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return res, ctx.Err()
	case errors.Is(err, tfinstall.ErrInvalidVersion):
		return res, configErrorf("%v", err)
	case errors.As(err, &ie):
		return res, &stepError{code: task.CodeInstall, msg: err.Error(), cause: err}
	case errors.As(err, &ee):
		return res, &stepError{code: task.CodeEngineUnavailable, msg: err.Error(), cause: err}
	default:
		return res, transientError("installing "+p.EffectiveEngine().Binary(), err)
	}
}

// Engines reports what this runner host offers of each engine: the versions
// it can run now, and whether it downloads Terraform versions it lacks. (A
// function, not a Runner method: every exported Runner method is an
// activity.)
func Engines(ctx context.Context, r *Runner) []task.EngineInfo {
	tf, download := r.st().installer.Available(ctx)
	return []task.EngineInfo{
		{Engine: task.EngineTerraform, Versions: nonNil(tf), Download: download},
		{Engine: task.EngineOpenTofu, Versions: nonNil(r.st().tofu.Available(ctx))},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// engineWording names the task's own binary in a failed command's message
// ("tofu plan failed: ..." for an OpenTofu task).
func engineWording(err error, engine task.Engine) error {
	var se *stepError
	if engine == task.EngineTerraform || !errors.As(err, &se) || !strings.HasPrefix(se.msg, "terraform ") {
		return err
	}
	c := *se
	c.msg = engine.Binary() + strings.TrimPrefix(se.msg, "terraform")
	return &c
}
