package activities

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/task"
)

// Task code is untrusted (README, Isolation): every engine command of a step
// runs in the runner's sandbox (package sandbox), which shows it only what
// the step needs, at the paths the runner uses:
//
//	work/<task-id>/config/          read-write: the configuration, .terraform
//	work/<task-id>/.terratask/      read-only: the var file, the saved plan
//	work/.../.terratask/plan.tfplan read-write while the plan step writes it
//	state/<org>/<workspace>/        read-write, with the local state backend
//	plugin-cache/                   read-write for init, else read-only
//	the engine binary, the CLI config and the mirrors it names, the source
//	roots                           read-only
//
// The private dir is read-only so that task code cannot plant a symlink
// where the runner later writes (the log spool) or reads (the plan). Every
// other path of the runner's data dir (keys, stores, other tasks' work dirs,
// init templates) is absent.

// sandboxDir is the runner-private dir of one step's sandbox files.
func (r *Runner) sandboxDir(execID string) string {
	return filepath.Join(r.dataDir(), "sandbox", execID)
}

// sandboxed returns what terraform-exec should run for the engine at
// execPath in dir: a wrapper that runs it in the step's sandbox, or
// execPath itself when the runner sandboxes nothing.
func (s *stepRun) sandboxed(dir, execPath string) (string, error) {
	if !s.r.Sandbox.Active() {
		return execPath, nil
	}
	engine, err := filepath.EvalSymlinks(execPath)
	if err != nil {
		return "", transientError("resolving the engine binary", err)
	}
	if engine, err = filepath.Abs(engine); err != nil {
		return "", transientError("resolving the engine binary", err)
	}
	mounts := []sandbox.Mount{{Path: dir, Write: true}}
	if s.hasDir {
		mounts = append(mounts, sandbox.Mount{Path: s.paths.private})
		if s.writingPlan {
			// plan -out truncates and writes the file in place, so a bound
			// empty file receives it (savePlan made it).
			mounts = append(mounts, sandbox.Mount{Path: s.paths.planFile, Write: true})
		}
	}
	cache := s.pluginCache()
	mounts = append(mounts, sandbox.Mount{Path: cache, Write: s.step == task.StepInitializing})
	cli, err := s.r.cliConfig()
	if err != nil {
		return "", transientError("writing the Terraform CLI config", err)
	}
	mounts = append(mounts, sandbox.Mount{Path: cli})
	for _, p := range cliConfigPaths(cli) {
		mounts = append(mounts, sandbox.Mount{Path: p, Optional: true})
	}
	for _, p := range s.r.SourceRoots {
		if abs, err := filepath.Abs(p); err == nil {
			mounts = append(mounts, sandbox.Mount{Path: abs, Optional: true})
		}
	}
	mounts = append(mounts, impliedMirrors()...)
	if !s.usesHTTPBackend() {
		if d, err := s.r.stateDir(s.in.Task); err == nil {
			mounts = append(mounts, sandbox.Mount{Path: d, Write: true, Optional: true})
		}
	}
	// A mount that holds the runner's data dir (a --source-root / or a
	// mirror at /, say) would show its keys: such a mount is left out.
	kept := mounts[:0]
	for _, m := range mounts {
		if !within(filepath.Clean(m.Path), s.r.dataDir()) {
			kept = append(kept, m)
		}
	}
	w, err := s.r.Sandbox.Prepare(sandbox.Spec{Dir: s.r.sandboxDir(s.execID), Engine: engine, Mounts: kept})
	if err != nil {
		return "", internalErrorf("preparing the sandbox: %v", err)
	}
	return w, nil
}

// impliedMirrors are the runner user's implied local provider mirrors
// (providers installed by hand in ~/.terraform.d/plugins or the XDG data
// dir), shown read-only in the sandbox. The XDG one keeps its host path,
// named to the engine by XDG_DATA_DIRS (impliedDataDirs), so the links
// init makes into it resolve on the host too and an init template that
// holds them stays usable. ~/.terraform.d has no such variable: it appears
// under the sandbox's HOME. /usr/share and /usr/local/share are visible
// already.
func impliedMirrors() []sandbox.Mount {
	var out []sandbox.Mount
	if home, _ := os.UserHomeDir(); home != "" {
		out = append(out, sandbox.Mount{Path: filepath.Join(home, ".terraform.d", "plugins"),
			At: filepath.Join(sandbox.Home, ".terraform.d", "plugins"), Optional: true})
	}
	if data := hostDataHome(); data != "" {
		for _, engine := range []string{"terraform", "opentofu"} {
			out = append(out, sandbox.Mount{Path: filepath.Join(data, engine, "plugins"), Optional: true})
		}
	}
	return out
}

// hostDataHome is the runner user's XDG data home ("" when unknown).
func hostDataHome() string {
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		if home, _ := os.UserHomeDir(); home != "" {
			data = filepath.Join(home, ".local", "share")
		}
	}
	if !filepath.IsAbs(data) {
		return ""
	}
	return data
}

// impliedDataDirs is XDG_DATA_DIRS for a sandboxed engine: the runner's
// data home first (see impliedMirrors), then the defaults.
func impliedDataDirs() string {
	dirs := "/usr/local/share:/usr/share"
	if data := hostDataHome(); data != "" {
		dirs = data + ":" + dirs
	}
	return dirs
}

// removeSandbox removes the step's sandbox files (at finish).
func (s *stepRun) removeSandbox() {
	if s.r.Sandbox.Active() {
		_ = os.RemoveAll(s.r.sandboxDir(s.execID))
	}
}

// ensureFile creates path as an empty 0600 file unless a regular file is
// there; anything else there is removed first.
func ensureFile(path string) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().IsRegular() {
			return nil
		}
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// cliConfigPathRe finds the directories a CLI config names: filesystem
// mirrors and a plugin cache.
var cliConfigPathRe = regexp.MustCompile(`(?m)^\s*(?:path|plugin_cache_dir)\s*=\s*"([^"]+)"`)

// cliConfigPaths are the absolute directories the CLI config at path names,
// which the engine reads (read-only in the sandbox).
func cliConfigPaths(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range cliConfigPathRe.FindAllSubmatch(b, -1) {
		if p := string(m[1]); filepath.IsAbs(p) {
			out = append(out, filepath.Clean(p))
		}
	}
	return out
}

// hostEnvKept are the runner's variables a sandboxed engine still gets:
// locale and time zone (the sandbox sets PATH, HOME and TMPDIR).
var hostEnvKept = []string{"LANG", "LC_ALL", "LC_CTYPE", "TZ"}

// hostEnv is what an engine process takes from the runner's environment.
// With isolation off, everything but the runner's own settings (the
// behaviour before isolation). Otherwise only locale and time zone, and
// the variables the operator passes on by name (PassEnv: NAME, or PREFIX*
// for every name with that prefix), so the runner's keys, store DSN and
// Temporal credentials never reach task code.
func (r *Runner) hostEnv() map[string]string {
	env := map[string]string{}
	off := r.Sandbox.Mode() == sandbox.Off
	for _, kv := range os.Environ() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.HasPrefix(k, "TERRATASK_") || strings.HasPrefix(k, "TEMPORAL_") || runnerOwnedEnv[k] {
			continue
		}
		if off || passed(k, hostEnvKept) || passed(k, r.PassEnv) {
			env[k] = v
		}
	}
	if r.Sandbox.Active() {
		env["PATH"] = sandbox.Path
		if _, passedOn := env["XDG_DATA_DIRS"]; !passedOn {
			env["XDG_DATA_DIRS"] = impliedDataDirs()
		}
	} else if p, ok := os.LookupEnv("PATH"); ok {
		env["PATH"] = p
	}
	return env
}

// passed reports whether name matches one of the patterns (NAME or
// PREFIX*).
func passed(name string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// CheckPassEnv validates --pass-env patterns: variable names, or a prefix
// followed by *; never the runner's own settings.
func CheckPassEnv(patterns []string) error {
	for _, p := range patterns {
		name := strings.TrimSuffix(p, "*")
		switch {
		case name == "" || !envNameRe.MatchString(name):
			return configErrorf("--pass-env %q: want a variable name, or a prefix followed by *", p)
		case strings.HasPrefix(name, "TERRATASK_") || strings.HasPrefix(name, "TEMPORAL_") ||
			(name != p && (strings.HasPrefix("TERRATASK_", name) || strings.HasPrefix("TEMPORAL_", name))):
			return configErrorf("--pass-env %q would hand the runner's own settings to task code", p)
		}
	}
	return nil
}
