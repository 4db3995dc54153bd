package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/terratask/terratask/internal/sandbox"
)

// SandboxResult is the cost of the runner's sandbox per engine command:
// `terraform version` run bare and through a step's sandbox wrapper (the
// same mounts a step has), alternating, in the same run.
type SandboxResult struct {
	Bare      Dist    `json:"bare"`
	Sandboxed Dist    `json:"sandboxed"`
	AddedMS   float64 `json:"added_p50_ms"`
}

// TargetSandboxMS is the sandbox's added p50 per engine command.
const TargetSandboxMS = 10

// sandboxCost measures the sandbox's cost per command.
func (r *runner) sandboxCost(ctx context.Context) error {
	sb, err := sandbox.New(ctx, sandbox.Options{Mode: sandbox.Strict, Dir: r.work})
	if err != nil {
		return err
	}
	tf, err := exec.LookPath("terraform")
	if err != nil {
		return err
	}
	if tf, err = filepath.EvalSymlinks(tf); err != nil {
		return err
	}
	dir := filepath.Join(r.work, "sandbox-bench")
	config := filepath.Join(dir, "config")
	if err := os.MkdirAll(config, 0o700); err != nil {
		return err
	}
	sbDir := filepath.Join(dir, "sb")
	wrapper, err := sb.Prepare(sandbox.Spec{Dir: sbDir, Engine: tf,
		Mounts: []sandbox.Mount{{Path: config, Write: true}}})
	if err != nil {
		return err
	}
	runs := 40
	if r.cfg.Quick {
		runs = 10
	}
	one := func(bin string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, bin, "version", "-json")
		cmd.Dir = config
		cmd.Env = []string{"PATH=" + sandbox.Path, "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null", sandbox.EnvDir + "=" + sbDir}
		t := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s version: %v\n%s", bin, err, out)
		}
		return time.Since(t), nil
	}
	var bare, boxed []time.Duration
	for i := 0; i < runs+2; i++ {
		b, err := one(tf)
		if err != nil {
			return err
		}
		s, err := one(wrapper)
		if err != nil {
			return err
		}
		if i >= 2 { // warm-ups
			bare, boxed = append(bare, b), append(boxed, s)
		}
	}
	res := &SandboxResult{Bare: Summarise(bare), Sandboxed: Summarise(boxed)}
	res.AddedMS = res.Sandboxed.P50 - res.Bare.P50
	r.res.Sandbox = res
	if res.Sandboxed.N == 0 {
		return errors.New("no samples")
	}
	return nil
}
