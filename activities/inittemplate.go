package activities

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/terratask/terratask/task"
)

// Init templates: an initialised working directory reused by the next init
// of the same inputs.
//
// `terraform init` of a configuration writes only .terraform (the backend's
// settings, links to the provider packages, the module manifest) and the
// dependency lock file. What it writes depends on nothing but its inputs: the
// binary, the CLI config, the configuration's files (local modules
// included), the lock file the task gave, and the backend block. After a
// successful init whose result can be reused, the runner keeps a copy of
// both under DataDir/init-templates/<key>, where key hashes those inputs
// (templateKey); a later Init of the same key copies them into its fresh
// configuration dir instead of running Terraform: a few small files and
// symlinks, about a millisecond, where init is a process of 50 ms or more.
//
// No state can travel this way. The runner's backends keep a task's state
// outside .terraform: the HTTP backend's block is the same for every
// workspace (its address, lock address and credential reach Terraform in
// TF_HTTP_* variables at every command, through a route of the step's own),
// so one template serves every workspace of a configuration; the local
// backend's block names the workspace's state file, so its key, and its
// template, are the workspace's own. A configuration that declares a
// backend of its own, or is fetched with -from-module, always runs init.
//
// A template is kept only when it can be copied whole and stays true: every
// provider under .terraform/providers is a symlink (into the plugin cache,
// or a filesystem mirror) whose target exists, and every module is in the
// configuration dir (a registry or Git module could change under the same
// key). Its provider choices are those of the init that made it, as in a
// working directory a user keeps: a task that gave no lock file gets the
// versions that init chose. A template is used for templateTTL after it was
// made; then an init runs again and makes a new one, so a provider release
// that a fresh init would pick is picked up within that time.

// templatesDir is under the data dir, beside the plugin cache.
const templatesDir = "init-templates"

// templateTTL is how long a template is used after it was made.
const templateTTL = time.Hour

// templateKey hashes the inputs of an init of the populated configuration
// dir, its backend file included.
func (s *stepRun) templateKey(tfPath string) (string, error) {
	key, _, err := s.initKeyOf(tfPath, true)
	if err != nil {
		return "", err
	}
	return "t1-" + key[:48], nil
}

func (r *Runner) templateDir(key string) string {
	return filepath.Join(r.dataDir(), templatesDir, key)
}

// useTemplate fills the configuration dir from key's template, if there is
// a valid one, and reports whether it did.
func (s *stepRun) useTemplate(key string) bool {
	dir := s.r.templateDir(key)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	if time.Since(fi.ModTime()) > templateTTL {
		_ = os.RemoveAll(dir)
		return false
	}
	if why := linkedProviders(filepath.Join(dir, ".terraform")); why != "" {
		s.book.runner(task.LevelInfo, "init: the initialised directory kept for this configuration is stale (%s); running init", why)
		_ = os.RemoveAll(dir)
		return false
	}
	cfg := s.paths.config
	if err := copyTree(filepath.Join(dir, ".terraform"), filepath.Join(cfg, ".terraform")); err != nil {
		_ = os.RemoveAll(filepath.Join(cfg, ".terraform"))
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, lockFileName)); err == nil {
		_ = os.Remove(filepath.Join(cfg, lockFileName))
		if err := copyFile(filepath.Join(dir, lockFileName), filepath.Join(cfg, lockFileName), 0o600); err != nil {
			_ = os.RemoveAll(filepath.Join(cfg, ".terraform"))
			return false
		}
	}
	s.book.runner(task.LevelInfo, "init: reused the initialised working directory of an identical configuration (%s); terraform init was not needed", key[:15])
	return true
}

// saveTemplate keeps the configuration dir's init result as key's template
// when it can be reused; see the package comment above.
func (s *stepRun) saveTemplate(key string) {
	cfg := s.paths.config
	if why := linkedProviders(filepath.Join(cfg, ".terraform")); why != "" {
		s.book.runner(task.LevelDebug, "init: the initialised directory is not kept for reuse: %s", why)
		return
	}
	if why := nonLocalModule(cfg); why != "" {
		s.book.runner(task.LevelDebug, "init: the initialised directory is not kept for reuse: %s", why)
		return
	}
	dst := s.r.templateDir(key)
	if _, err := os.Stat(dst); err == nil {
		return
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return
	}
	err = copyTree(filepath.Join(cfg, ".terraform"), filepath.Join(tmp, ".terraform"))
	if err == nil {
		if _, serr := os.Stat(filepath.Join(cfg, lockFileName)); serr == nil {
			err = copyFile(filepath.Join(cfg, lockFileName), filepath.Join(tmp, lockFileName), 0o600)
		}
	}
	if err == nil {
		// Another init of the key may have been quicker: then its stays.
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
	}
}

// linkedProviders checks that every provider package under a .terraform
// dir is a symlink whose target exists, and says why not otherwise.
func linkedProviders(dotTerraform string) string {
	if _, err := os.Stat(dotTerraform); err != nil {
		return "no .terraform"
	}
	links, err := filepath.Glob(filepath.Join(dotTerraform, "providers", "*", "*", "*", "*", "*"))
	if err != nil {
		return "cannot list the installed providers"
	}
	for _, link := range links {
		fi, err := os.Lstat(link)
		if err != nil {
			return "cannot read the installed providers"
		}
		name := filepath.Base(filepath.Dir(filepath.Dir(link)))
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Sprintf("provider %s was copied, not linked", name)
		}
		target, err := os.Readlink(link)
		if err != nil || !filepath.IsAbs(target) {
			return fmt.Sprintf("provider %s is not linked by an absolute path", name)
		}
		if _, err := os.Stat(link); err != nil {
			return fmt.Sprintf("provider %s is gone from where it was linked", name)
		}
	}
	return ""
}

// copyTree copies a directory tree, keeping symlinks as symlinks and
// skipping anything but directories, regular files and symlinks.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(path, to, info.Mode())
		}
		return nil
	})
}
