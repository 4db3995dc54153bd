// Package tfinstall finds or installs the Terraform binary a task asks for.
//
// For a wanted version (exact "1.11.4", a constraint such as "~> 1.11", or ""
// for any) it tries, in order: a binary on PATH (hc-install's fs finders,
// checking the version), the per-version cache under Dir, and a download from
// HashiCorp's releases into that cache (hc-install's releases installers).
// One install per wanted version runs at a time: an in-process mutex per
// version plus a file lock shared with other processes using the same Dir.
// Results are remembered for the life of the Installer, so `terraform
// version` does not run again for every task.
package tfinstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hc-install/fs"
	"github.com/hashicorp/hc-install/product"
	"github.com/hashicorp/hc-install/releases"

	"github.com/terratask/terratask/internal/filelock"
)

// Options configure an Installer.
type Options struct {
	// Dir holds one directory per installed version: Dir/<version>/terraform.
	Dir string
	// ExtraPaths are searched after PATH.
	ExtraPaths []string
	// DisableDownload skips the releases download (air-gapped runners).
	DisableDownload bool
	// APIBaseURL replaces https://releases.hashicorp.com (a mirror).
	APIBaseURL string
	// DownloadTimeout bounds one download; default 5 minutes.
	DownloadTimeout time.Duration
}

// Result is a usable Terraform binary.
type Result struct {
	Path    string
	Version string
	// Source says where it came from: "path", "cache" or "download".
	Source string
}

// ErrInvalidVersion is returned for a wanted version that is neither a
// version nor a constraint.
var ErrInvalidVersion = errors.New("invalid terraform_version")

// InstallError lists what was tried when no binary could be found or
// installed.
type InstallError struct {
	Want  string
	Tried []string
}

func (e *InstallError) Error() string {
	want := e.Want
	if want == "" {
		want = "any version"
	}
	return fmt.Sprintf("no usable terraform (%s); tried: %s", want, strings.Join(e.Tried, "; "))
}

// Installer finds and installs Terraform binaries. It is safe for concurrent
// use.
type Installer struct {
	opts Options

	mu    sync.Mutex
	done  map[string]Result
	locks map[string]chan struct{}
}

// New returns an Installer.
func New(opts Options) *Installer {
	if opts.DownloadTimeout <= 0 {
		opts.DownloadTimeout = 5 * time.Minute
	}
	return &Installer{opts: opts, done: map[string]Result{}, locks: map[string]chan struct{}{}}
}

// want is a parsed wanted version.
type want struct {
	raw   string
	key   string              // canonical: "any", "1.11.4", "~> 1.11.0"
	exact *version.Version    // set for an exact version
	cons  version.Constraints // set for a constraint
}

var (
	exactRe = regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$`)
	minorRe = regexp.MustCompile(`^v?(\d+\.\d+)$`)
)

func parseWant(s string) (want, error) {
	s = strings.TrimSpace(s)
	w := want{raw: s}
	switch {
	case s == "" || s == "latest":
		w.key = "any"
		return w, nil
	case exactRe.MatchString(s):
		v, err := version.NewVersion(s)
		if err != nil {
			return w, fmt.Errorf("%w %q: %v", ErrInvalidVersion, s, err)
		}
		w.exact, w.key = v, v.String()
		return w, nil
	case minorRe.MatchString(s):
		// "1.11" means any 1.11.x, not 1.11.0.
		s = "~> " + minorRe.FindStringSubmatch(s)[1] + ".0"
	}
	c, err := version.NewConstraint(s)
	if err != nil {
		return w, fmt.Errorf("%w %q: want a version such as 1.11.4 or a constraint such as \"~> 1.11\"", ErrInvalidVersion, w.raw)
	}
	w.cons, w.key = c, c.String()
	return w, nil
}

// Ensure returns a Terraform binary matching wantVersion ("" = any).
func (i *Installer) Ensure(ctx context.Context, wantVersion string) (Result, error) {
	w, err := parseWant(wantVersion)
	if err != nil {
		return Result{}, err
	}
	unlock, err := i.lockKey(ctx, w.key)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	i.mu.Lock()
	r, ok := i.done[w.key]
	i.mu.Unlock()
	if ok && isExecutable(r.Path) {
		return r, nil
	}
	r, err = i.find(ctx, w)
	if err != nil {
		return Result{}, err
	}
	i.mu.Lock()
	i.done[w.key] = r
	i.mu.Unlock()
	return r, nil
}

// lockKey is a context-aware per-version mutex.
func (i *Installer) lockKey(ctx context.Context, key string) (func(), error) {
	i.mu.Lock()
	ch, ok := i.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		i.locks[key] = ch
	}
	i.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (i *Installer) find(ctx context.Context, w want) (Result, error) {
	var tried []string

	if r, err := i.fromPath(ctx, w); err == nil {
		return r, nil
	} else if ctx.Err() != nil {
		return Result{}, ctx.Err()
	} else {
		tried = append(tried, "PATH: "+short(err))
	}

	if i.opts.Dir == "" {
		tried = append(tried, "cache: no install directory configured")
		return Result{}, &InstallError{Want: w.raw, Tried: tried}
	}
	if err := os.MkdirAll(i.opts.Dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating terraform install dir: %w", err)
	}
	// Other processes sharing Dir may be installing the same version.
	lock, err := filelock.Acquire(ctx, filepath.Join(i.opts.Dir, ".lock-"+lockName(w.key)))
	if err != nil {
		return Result{}, fmt.Errorf("locking terraform install dir: %w", err)
	}
	defer lock.Release()

	if r, err := i.fromCache(ctx, w); err == nil {
		return r, nil
	} else {
		tried = append(tried, fmt.Sprintf("cache %s: %s", i.opts.Dir, short(err)))
	}

	if i.opts.DisableDownload {
		tried = append(tried, "download: disabled on this runner")
		return Result{}, &InstallError{Want: w.raw, Tried: tried}
	}
	r, err := i.download(ctx, w)
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	tried = append(tried, "download from releases: "+short(err))
	return Result{}, &InstallError{Want: w.raw, Tried: tried}
}

func (i *Installer) fromPath(ctx context.Context, w want) (Result, error) {
	var (
		path string
		err  error
	)
	switch {
	case w.exact != nil:
		path, err = (&fs.ExactVersion{Product: terraformProduct, Version: w.exact, ExtraPaths: i.opts.ExtraPaths}).Find(ctx)
	case w.cons != nil:
		path, err = (&fs.Version{Product: terraformProduct, Constraints: w.cons, ExtraPaths: i.opts.ExtraPaths}).Find(ctx)
	default:
		path, err = (&fs.AnyVersion{Product: &terraformProduct, ExtraPaths: i.opts.ExtraPaths}).Find(ctx)
	}
	if err != nil {
		return Result{}, err
	}
	v, err := BinaryVersion(ctx, path)
	if err != nil {
		return Result{}, fmt.Errorf("%s: reading version: %w", path, err)
	}
	return Result{Path: path, Version: v.String(), Source: "path"}, nil
}

// fromCache picks the highest cached version that matches.
func (i *Installer) fromCache(ctx context.Context, w want) (Result, error) {
	ents, err := os.ReadDir(i.opts.Dir)
	if err != nil {
		return Result{}, err
	}
	var cands version.Collection
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, err := version.NewVersion(e.Name())
		if err != nil || !w.matches(v) {
			continue
		}
		cands = append(cands, v)
	}
	sort.Sort(sort.Reverse(cands))
	for _, v := range cands {
		path := filepath.Join(i.opts.Dir, v.String(), terraformProduct.BinaryName())
		if !isExecutable(path) {
			continue
		}
		got, err := BinaryVersion(ctx, path)
		if err != nil || !got.Equal(v) {
			continue // a broken or foreign binary; a download replaces it
		}
		return Result{Path: path, Version: v.String(), Source: "cache"}, nil
	}
	return Result{}, errors.New("no matching version installed")
}

// download installs into a temporary directory and renames it into place,
// so an interrupted download never looks like a cached version.
func (i *Installer) download(ctx context.Context, w want) (Result, error) {
	tmp, err := os.MkdirTemp(i.opts.Dir, ".download-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)

	var path string
	if w.exact != nil {
		path, err = (&releases.ExactVersion{Product: terraformProduct, Version: w.exact, InstallDir: tmp,
			Timeout: i.opts.DownloadTimeout, ApiBaseURL: i.opts.APIBaseURL}).Install(ctx)
	} else {
		path, err = (&releases.LatestVersion{Product: terraformProduct, Constraints: w.cons, InstallDir: tmp,
			Timeout: i.opts.DownloadTimeout, ApiBaseURL: i.opts.APIBaseURL}).Install(ctx)
	}
	if err != nil {
		return Result{}, err
	}
	v, err := BinaryVersion(ctx, path)
	if err != nil {
		return Result{}, fmt.Errorf("downloaded binary does not run: %w", err)
	}
	if !w.matches(v) {
		return Result{}, fmt.Errorf("downloaded version %s does not match", v)
	}
	dst := filepath.Join(i.opts.Dir, v.String())
	if err := os.RemoveAll(dst); err != nil {
		return Result{}, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Result{}, err
	}
	return Result{Path: filepath.Join(dst, filepath.Base(path)), Version: v.String(), Source: "download"}, nil
}

// terraformProduct is hc-install's Terraform with a version reader that
// does not depend on the runner's environment: hc-install's own merges
// stderr into the JSON it parses, so a CLI config warning (a
// TF_CLI_CONFIG_FILE that does not exist) breaks it, and its plain-text
// fallback only knows "Terraform vX" (not OpenTofu's "OpenTofu vX").
var terraformProduct = func() product.Product {
	p := product.Terraform
	p.GetVersion = BinaryVersion
	return p
}()

var plainVersionRe = regexp.MustCompile(`(?m)^(?:Terraform|OpenTofu) v?(\d+\.\d+\.\d+\S*)`)

// BinaryVersion runs `<path> version -json` (`version` for binaries older
// than 0.13) with a neutral CLI config and returns the version.
func BinaryVersion(ctx context.Context, path string) (*version.Version, error) {
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+os.DevNull, "CHECKPOINT_DISABLE=1")
		return cmd.Output()
	}
	out, err := run("version", "-json")
	if err == nil {
		var v struct {
			Version string `json:"terraform_version"`
		}
		if json.Unmarshal(out, &v) == nil && v.Version != "" {
			return version.NewVersion(v.Version)
		}
	}
	out, err = run("version")
	if err != nil {
		return nil, fmt.Errorf("running %s version: %w", path, err)
	}
	m := plainVersionRe.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%s version: unexpected output %q", path, firstLineOf(string(out)))
	}
	return version.NewVersion(string(m[1]))
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (w want) matches(v *version.Version) bool {
	switch {
	case w.exact != nil:
		return v.Equal(w.exact)
	case w.cons != nil:
		return w.cons.Check(v)
	default:
		return v.Prerelease() == ""
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// lockName turns a version key into a file name.
func lockName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, key)
}

// short keeps the first line of an error, trimmed, so the tried list stays
// readable.
func short(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
