package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/terratask/terratask/internal/filelock"
	"github.com/terratask/terratask/task"
)

// The plugin cache lock.
//
// Every init of the runner shares DataDir/plugin-cache (TF_PLUGIN_CACHE_DIR;
// OpenTofu's inits share DataDir/plugin-cache-opentofu instead: each engine
// rewrites a cache entry the other one made, under the feet of its running
// commands).
// Terraform writes to it only when it installs a provider package the cache
// lacks; a provider that is there it only reads and links into the
// configuration's .terraform/providers. Terraform does not lock the cache, so
// a writer must be alone: two writers of one package, or a reader of a
// package being written, see a partial package. Inits therefore hold a
// reader/writer lock on the cache: an in-process rwlock.Mutex orders the
// goroutines of this process, a flock of DataDir/plugin-cache.lock the
// processes sharing the data dir. (In this process a waiting exclusive init
// keeps new shared ones out; flock has no such order, so shared inits of
// other processes can keep one waiting longer.)
//
// An init takes the lock shared ("warm") only when it cannot install
// anything: an earlier, exclusive init of the same key succeeded on this data
// dir without choosing provider versions itself, and every provider package it
// linked is still in the cache. Everything else takes it exclusively (cold).
// The key (initKey) covers what decides which packages init needs: the
// Terraform binary, the CLI config, the configuration's .tf and .tf.json files
// (local modules included) and its dependency lock file. The versions are
// fixed only when the lock file names them all, that is when init left the
// lock file as it was (absent before and after means no provider at all);
// otherwise Terraform picks the newest matching release, which may be a new
// one next time. Modules from anywhere but the configuration dir (registry,
// Git, -from-module) may change under the same key, so they keep it cold.
//
// A successful exclusive init records its key in a marker file,
// plugin-cache/.terratask-warm/<key>, listing the cache entries it used; a
// failed warm init removes it, so the next init of the key installs again.

// warmDir is the marker dir inside the plugin cache, so wiping the cache
// wipes the markers too. Terraform's scan of the cache passes over it without
// a word (seen with 1.11, TF_LOG=trace): a provider's path starts with a
// hostname, which this is not.
const warmDir = ".terratask-warm"

// lockFileName is Terraform's dependency lock file.
const lockFileName = ".terraform.lock.hcl"

// cacheHold is an init's hold on the plugin cache.
type cacheHold struct {
	s      *stepRun
	shared bool
	// key is the init key, "" when the init cannot become warm.
	key string
	// lockSum is the hash of the configuration's lock file before init, ""
	// when it had none.
	lockSum string
	unlock  func()
}

// holdPluginCache takes the plugin cache lock for an init of the populated
// configuration dir: shared when the init is warm, else exclusive. fromModule
// tells that init fetches the configuration itself.
func (s *stepRun) holdPluginCache(ctx context.Context, tfPath string, fromModule bool) (*cacheHold, error) {
	h := &cacheHold{s: s}
	if !fromModule {
		key, lockSum, err := s.initKey(tfPath)
		if err != nil {
			s.book.runner(task.LevelDebug, "plugin cache: no init key (%v); init takes the cache exclusively", err)
		} else {
			h.key, h.lockSum = key, lockSum
			h.shared = s.r.isWarm(s.pluginCache(), key)
		}
	}
	if h.shared {
		s.book.runner(task.LevelDebug, "plugin cache: every provider of this configuration is cached; init shares the cache")
	}
	unlock, err := s.lockInit(ctx, h.shared)
	if err != nil {
		return nil, err
	}
	if !h.shared && h.key != "" && s.r.isWarm(s.pluginCache(), h.key) {
		// An init of the same key ended while this one waited (a burst
		// of tasks of one configuration): go on beside the others.
		unlock()
		h.shared = true
		s.book.runner(task.LevelDebug, "plugin cache: another init just cached every provider of this configuration; init shares the cache")
		if unlock, err = s.lockInit(ctx, true); err != nil {
			return nil, err
		}
	}
	h.unlock = unlock
	return h, nil
}

// release ends the hold once init ended with err: a successful exclusive
// init marks its key warm when it may be, a failed warm one unmarks it.
func (h *cacheHold) release(err error) {
	defer h.unlock()
	if h.key == "" {
		return
	}
	r := h.s.r
	switch {
	case err != nil && h.shared:
		if rerr := os.Remove(r.warmMarker(h.s.pluginCache(), h.key)); rerr == nil {
			h.s.book.runner(task.LevelInfo, "plugin cache: init failed; the next init of this configuration takes the cache exclusively")
		}
	case err == nil && !h.shared:
		entries, why := h.s.cachedProviders(h.lockSum)
		if why != "" {
			h.s.book.runner(task.LevelDebug, "plugin cache: later inits of this configuration stay exclusive: %s", why)
			return
		}
		if werr := r.markWarm(h.s.pluginCache(), h.key, entries); werr != nil {
			h.s.book.runner(task.LevelWarn, "plugin cache: cannot record the configuration's providers as cached: %v", werr)
		}
	}
}

// lockInit takes the plugin cache lock, shared or exclusive, logging when it
// has to wait.
func (s *stepRun) lockInit(ctx context.Context, shared bool) (func(), error) {
	gate := &s.r.st().initLock
	tryLock, lock, unlock := gate.TryLock, gate.Lock, gate.Unlock
	tryFile, acquireFile := filelock.TryAcquire, filelock.Acquire
	if shared {
		tryLock, lock, unlock = gate.TryRLock, gate.RLock, gate.RUnlock
		tryFile, acquireFile = filelock.TryAcquireShared, filelock.AcquireShared
	}
	if !tryLock() {
		s.book.runner(task.LevelInfo, "waiting for another terraform init on this runner (shared plugin cache)")
		if err := lock(ctx); err != nil {
			return nil, err
		}
	}
	path := s.pluginCache() + ".lock"
	fl, err := tryFile(path)
	if err == nil && fl == nil {
		s.book.runner(task.LevelInfo, "waiting for a terraform init of another process on this runner (shared plugin cache)")
		fl, err = acquireFile(ctx, path)
	}
	if err != nil {
		unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, transientError("locking the plugin cache", err)
	}
	return func() {
		fl.Release()
		unlock()
	}, nil
}

// initKey hashes what decides the provider packages an init of the
// configuration dir needs, and returns the hash of its lock file apart ("" if
// there is none). The runner's generated backend file is left out: it
// decides no provider.
func (s *stepRun) initKey(tfPath string) (key, lockSum string, err error) {
	return s.initKeyOf(tfPath, false)
}

// initKeyOf is initKey, with the generated backend file hashed too when
// withBackend is set.
func (s *stepRun) initKeyOf(tfPath string, withBackend bool) (key, lockSum string, err error) {
	h := sha256.New()
	fmt.Fprintf(h, "terratask init key 1\n")
	fi, err := os.Stat(tfPath)
	if err != nil {
		return "", "", err
	}
	// The binary's path, size and time stand for its version: hashing
	// 80 MB per init would cost more than the lock.
	fmt.Fprintf(h, "terraform %q %d %d\n", tfPath, fi.Size(), fi.ModTime().UnixNano())
	// The engine and its own plugin cache (the links of .terraform/providers
	// point there): a directory OpenTofu initialised never serves Terraform,
	// nor the other way round, even through one path.
	fmt.Fprintf(h, "engine %q plugin cache %q\n", s.in.Task.Params.EffectiveEngine(), s.pluginCache())
	cliConfig, err := s.r.cliConfig()
	if err != nil {
		return "", "", err
	}
	if err := hashFile(h, "cli config "+cliConfig, cliConfig); err != nil {
		return "", "", err
	}
	dir := s.paths.config
	lockSum, err = fileSum(filepath.Join(dir, lockFileName))
	if err != nil {
		return "", "", err
	}
	fmt.Fprintf(h, "lock file %q\n", lockSum)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && name == ".terraform" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || !configFile(name) {
			return nil
		}
		if !withBackend && path == filepath.Join(dir, backendFile) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return hashFile(h, "file "+rel, path)
	})
	if err != nil {
		return "", "", err
	}
	return hex.EncodeToString(h.Sum(nil)), lockSum, nil
}

// configFile tells whether a file name is one Terraform or OpenTofu reads as
// configuration (OpenTofu also reads .tofu and .tofu.json).
func configFile(name string) bool {
	for _, ext := range []string{".tf", ".tf.json", ".tofu", ".tofu.json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// hashFile adds a labelled file's size and content to h.
func hashFile(h hash.Hash, label, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%q %d\n", label, len(b))
	h.Write(b)
	return nil
}

// fileSum is the hex SHA-256 of a file, "" when it does not exist.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cachedProviders checks, after a successful init, that a later init of the
// same key cannot install anything, and returns the cache entries this one
// linked (paths relative to the cache). Otherwise it says why not.
func (s *stepRun) cachedProviders(lockSumBefore string) (entries []string, whyNot string) {
	dir := s.paths.config
	if after, err := fileSum(filepath.Join(dir, lockFileName)); err != nil || after != lockSumBefore {
		return nil, "init chose provider versions that the dependency lock file did not fix"
	}
	if why := nonLocalModule(dir); why != "" {
		return nil, why
	}
	cache := s.pluginCache()
	realCache, err := filepath.EvalSymlinks(cache)
	if err != nil {
		return nil, "the plugin cache is not readable"
	}
	// .terraform/providers/HOST/NAMESPACE/TYPE/VERSION/OS_ARCH is a
	// symlink to the cache's entry when init took the package from there
	// (the entry may itself link to a filesystem mirror).
	links, err := filepath.Glob(filepath.Join(dir, ".terraform", "providers", "*", "*", "*", "*", "*"))
	if err != nil {
		return nil, "cannot list the installed providers"
	}
	for _, link := range links {
		rel, ok := cacheEntry(link, cache, realCache)
		if !ok {
			return nil, fmt.Sprintf("provider %s was not installed from the plugin cache", filepath.Base(filepath.Dir(filepath.Dir(link))))
		}
		entries = append(entries, filepath.ToSlash(rel))
	}
	sort.Strings(entries)
	return entries, ""
}

// cacheEntry returns the path inside the cache that link points to, if it
// points into the cache (given as configured and with symlinks resolved).
func cacheEntry(link, cache, realCache string) (string, bool) {
	target, err := os.Readlink(link)
	if err != nil {
		return "", false
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(link), target)
	}
	for _, c := range []string{cache, realCache} {
		if rel, err := filepath.Rel(c, filepath.Clean(target)); err == nil && filepath.IsLocal(rel) {
			return rel, true
		}
	}
	return "", false
}

// nonLocalModule says which module of the configuration dir came from
// elsewhere (and may change under the same key), or "" if none did.
func nonLocalModule(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ".terraform", "modules", "modules.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return "cannot read the installed modules"
	}
	var manifest struct {
		Modules []struct{ Key, Source, Dir string }
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		return "cannot read the installed modules"
	}
	for _, m := range manifest.Modules {
		d := filepath.Clean(m.Dir)
		inConfig := filepath.IsLocal(d) && d != ".terraform" && !strings.HasPrefix(d, ".terraform"+string(filepath.Separator))
		if d != "." && !inConfig {
			return fmt.Sprintf("module %q comes from %s", m.Key, m.Source)
		}
	}
	return ""
}

// warmMarker is the marker file of an init key in a plugin cache.
func (r *Runner) warmMarker(cache, key string) string {
	return filepath.Join(cache, warmDir, key)
}

// isWarm tells whether an init of key may share the cache: its marker exists
// and every cache entry it lists is still there.
func (r *Runner) isWarm(cache, key string) bool {
	b, err := os.ReadFile(r.warmMarker(cache, key))
	if err != nil {
		return false
	}
	for _, e := range strings.Split(string(b), "\n") {
		if e == "" {
			continue
		}
		if !filepath.IsLocal(e) {
			return false
		}
		if fi, err := os.Stat(filepath.Join(cache, filepath.FromSlash(e))); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// markWarm writes key's marker atomically, so processes sharing the data dir
// never read half of it.
func (r *Runner) markWarm(cache, key string, entries []string) error {
	dir := filepath.Join(cache, warmDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, e := range entries {
		buf.WriteString(e + "\n")
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(buf.Bytes())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), r.warmMarker(cache, key))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
