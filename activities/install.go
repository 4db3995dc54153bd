package activities

import (
	"context"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Install chooses the Terraform binary for the task's terraform_version ("" =
// any): one on PATH, then one installed under DataDir/terraform, then a
// download into it (see internal/tfinstall). Failing all three is a
// non-retryable install_failed error that lists what was tried.
func (r *Runner) Install(ctx context.Context, in StepInput) (out InstallOutput, err error) {
	s, err := r.begin(ctx, in, task.StepInstalling, true)
	defer func() { err = s.finish(ctx, err) }()
	if err != nil {
		return out, err
	}
	want := in.Task.Params.TerraformVersion
	res, err := r.install(ctx, want)
	if err != nil {
		return out, err
	}
	where := map[string]string{"path": "found on PATH", "cache": "installed on this runner", "download": "downloaded"}[res.Source]
	s.book.runner(store.LevelInfo, "using terraform %s at %s (%s)", res.Version, res.Path, where)
	return InstallOutput{TerraformPath: res.Path, Version: res.Version}, nil
}
