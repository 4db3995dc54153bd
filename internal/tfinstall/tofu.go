package tfinstall

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hc-install/fs"
)

// OpenTofu is never downloaded: hc-install installs HashiCorp products only,
// and a runner should not fetch binaries from elsewhere behind its operator's
// back. A TofuFinder looks for `tofu` binaries where the operator put them:
//
//   - each --tofu-path entry, in order: a binary (of any name), or a
//     directory holding `tofu` and/or one subdirectory per version
//     (DIR/1.6.3/tofu, DIR/v1.7.0/tofu: a directory of versions, highest
//     first);
//   - then every directory of PATH, in order.
//
// Without a wanted version the first binary found runs (so the operator's
// first --tofu-path is the default); with one, the first binary of exactly
// that version.

// TofuBinary is the command name of OpenTofu.
const TofuBinary = "tofu"

// EngineError says that no binary of an engine matches, and everything that
// was tried. It is the engine_unavailable failure.
type EngineError struct {
	Engine string // "OpenTofu"
	Want   string // "" for any version
	Tried  []string
}

func (e *EngineError) Error() string {
	want := "any version"
	if e.Want != "" {
		want = "version " + e.Want
	}
	return fmt.Sprintf("no usable %s (%s) on this runner host; tried: %s. %s is never downloaded: install tofu on PATH or give the runner --tofu-path",
		e.Engine, want, strings.Join(e.Tried, "; "), e.Engine)
}

// TofuFinder finds OpenTofu binaries. It is safe for concurrent use.
type TofuFinder struct {
	paths []string
	// pathEnv returns PATH; tests replace it.
	pathEnv func() string
}

// versionCache remembers binaries' versions while their files are
// unchanged, so a runner that looks often (capability reports) runs no
// binary for it.
type versionCache struct {
	mu       sync.Mutex
	versions map[string]binVersion // by path
}

// binVersion is a binary's version, remembered while the file is unchanged.
type binVersion struct {
	size    int64
	modTime time.Time
	version *version.Version
	err     error
}

// NewTofuFinder returns a finder searching paths (the --tofu-path entries)
// before PATH.
func NewTofuFinder(paths []string) *TofuFinder {
	return &TofuFinder{paths: paths, pathEnv: func() string { return os.Getenv("PATH") }}
}

// candidate is a binary found and where.
type candidate struct {
	path, origin string
}

// candidates lists the binaries in search order; tried collects what held
// none.
func (f *TofuFinder) candidates(tried *[]string) []candidate {
	var out []candidate
	seen := map[string]bool{}
	add := func(path, origin string) {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		if !seen[path] {
			seen[path] = true
			out = append(out, candidate{path: path, origin: origin})
		}
	}
	for _, p := range f.paths {
		origin := "--tofu-path " + p
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			*tried = append(*tried, origin+": "+short(err))
		case !fi.IsDir():
			if isExecutable(p) {
				add(p, origin)
			} else {
				*tried = append(*tried, origin+": not an executable file")
			}
		default:
			found := versionDirBinaries(p)
			if bin := filepath.Join(p, TofuBinary); isExecutable(bin) {
				found = append([]string{bin}, found...)
			}
			if len(found) == 0 {
				*tried = append(*tried, origin+": no tofu in the directory or its version subdirectories")
			}
			for _, b := range found {
				add(b, origin)
			}
		}
	}
	pathDirs := filepath.SplitList(f.pathEnv())
	n := len(out)
	for _, d := range pathDirs {
		if d == "" {
			continue
		}
		if bin := filepath.Join(d, TofuBinary); isExecutable(bin) {
			add(bin, "PATH")
		}
	}
	if len(out) == n {
		*tried = append(*tried, fmt.Sprintf("PATH (%d directories): no tofu", len(pathDirs)))
	}
	return out
}

// versionDirBinaries returns DIR/<version>/tofu for every subdirectory named
// like a version, highest version first.
func versionDirBinaries(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type vb struct {
		v   *version.Version
		bin string
	}
	var found []vb
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		v, err := version.NewVersion(e.Name())
		if err != nil {
			continue
		}
		if bin := filepath.Join(dir, e.Name(), TofuBinary); isExecutable(bin) {
			found = append(found, vb{v, bin})
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].v.GreaterThan(found[j].v) })
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.bin
	}
	return out
}

// binaryVersions serves every Installer and TofuFinder of the process: the
// runners of one process (dev's) look at the same binaries.
var binaryVersions versionCache

// version returns a binary's version, running it only when the file changed
// since the last look.
func (c *versionCache) version(ctx context.Context, path string) (*version.Version, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	e, ok := c.versions[path]
	c.mu.Unlock()
	if ok && e.size == fi.Size() && e.modTime.Equal(fi.ModTime()) {
		return e.version, e.err
	}
	v, err := BinaryVersion(ctx, path)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.mu.Lock()
	if c.versions == nil {
		c.versions = map[string]binVersion{}
	}
	c.versions[path] = binVersion{size: fi.Size(), modTime: fi.ModTime(), version: v, err: err}
	c.mu.Unlock()
	return v, err
}

// Find returns the OpenTofu binary for wantVersion ("" = the first found; else
// an exact version such as 1.6.3). Failing, it returns an *EngineError, or
// ErrInvalidVersion for a wanted version that is not an exact version.
func (f *TofuFinder) Find(ctx context.Context, wantVersion string) (Result, error) {
	var want *version.Version
	if s := strings.TrimSpace(wantVersion); s != "" {
		if !exactRe.MatchString(s) {
			return Result{}, fmt.Errorf("%w %q: want an exact version such as 1.6.3", ErrInvalidVersion, wantVersion)
		}
		v, err := version.NewVersion(s)
		if err != nil {
			return Result{}, fmt.Errorf("%w %q: %v", ErrInvalidVersion, wantVersion, err)
		}
		want = v
	}
	var tried []string
	var others []string
	for _, c := range f.candidates(&tried) {
		v, err := binaryVersions.version(ctx, c.path)
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%s): does not run: %s", c.path, c.origin, short(err)))
			continue
		}
		if want != nil && !v.Equal(want) {
			others = append(others, fmt.Sprintf("%s (%s) is %s", c.path, c.origin, v))
			continue
		}
		return Result{Path: c.path, Version: v.String(), Source: c.origin}, nil
	}
	tried = append(tried, others...)
	return Result{}, &EngineError{Engine: "OpenTofu", Want: strings.TrimSpace(wantVersion), Tried: tried}
}

// Available lists the OpenTofu versions this host can run, highest first.
func (f *TofuFinder) Available(ctx context.Context) []string {
	var tried []string
	seen := map[string]bool{}
	var vs version.Collection
	for _, c := range f.candidates(&tried) {
		v, err := binaryVersions.version(ctx, c.path)
		if err != nil || seen[v.String()] {
			continue
		}
		seen[v.String()] = true
		vs = append(vs, v)
	}
	return sortedVersions(vs)
}

func sortedVersions(vs version.Collection) []string {
	sort.Sort(sort.Reverse(vs))
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// Available lists the Terraform versions this host can run without a
// download, highest first: the binary on PATH (and ExtraPaths) and those
// installed under Dir. download tells whether others would be downloaded.
func (i *Installer) Available(ctx context.Context) (versions []string, download bool) {
	seen := map[string]bool{}
	var vs version.Collection
	if path, err := (&fs.AnyVersion{Product: &terraformProduct, ExtraPaths: i.opts.ExtraPaths}).Find(ctx); err == nil {
		if v, err := binaryVersions.version(ctx, path); err == nil {
			seen[v.String()] = true
			vs = append(vs, v)
		}
	}
	if i.opts.Dir != "" {
		ents, _ := os.ReadDir(i.opts.Dir)
		for _, e := range ents {
			v, err := version.NewVersion(e.Name())
			if err != nil || !e.IsDir() || seen[v.String()] {
				continue
			}
			if isExecutable(filepath.Join(i.opts.Dir, e.Name(), terraformProduct.BinaryName())) { // named by its version
				seen[v.String()] = true
				vs = append(vs, v)
			}
		}
	}
	return sortedVersions(vs), !i.opts.DisableDownload
}
