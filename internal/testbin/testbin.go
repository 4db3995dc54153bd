// Package testbin gives tests the binaries that cannot be downloaded on a
// machine without internet but build from the Go module proxy: OpenTofu's
// `tofu` (v1.6.3) and the hashicorp/time provider (v0.14.2) in a Terraform
// filesystem mirror. Each is cached next to the Go build cache (the same
// directories scripts/tofu-bin.sh and scripts/provider-mirror.sh use, and
// .ci/run fills ahead of the tests) or named by an environment variable; a
// test that needs a missing one builds it once (a few minutes for tofu),
// under a file lock shared by concurrent test binaries.
//
// When a build fails (no module proxy) the test is skipped, or fails when
// the CI environment variable is set.
package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/filelock"
)

// Environment variables the package reads.
const (
	// EnvTofuBin names the directory holding `tofu`.
	EnvTofuBin = "TERRATASK_TOFU_BIN"
	// EnvProviderMirror names the filesystem mirror holding the time provider.
	EnvProviderMirror = "TERRATASK_PROVIDER_MIRROR"
)

// Versions built.
const (
	TofuVersion         = "v1.6.3"
	TimeProviderVersion = "0.14.2"
)

var (
	tofuOnce, mirrorOnce sync.Once
	tofuPath, mirrorDir  string
	tofuErr, mirrorErr   error
)

// Tofu returns the path of the tofu binary, building it when missing.
func Tofu(tb testing.TB) string {
	tb.Helper()
	path, err := TofuPath()
	check(tb, err)
	return path
}

// ProviderMirror returns a filesystem mirror directory that serves
// registry.terraform.io/hashicorp/time at TimeProviderVersion.
func ProviderMirror(tb testing.TB) string {
	tb.Helper()
	dir, err := ProviderMirrorPath()
	check(tb, err)
	return dir
}

// MirrorCLIConfig writes a Terraform CLI config into dir that installs every
// provider from mirror only, and returns its path.
func MirrorCLIConfig(tb testing.TB, dir, mirror string) string {
	tb.Helper()
	path := filepath.Join(dir, "mirror.tfrc")
	conf := fmt.Sprintf("disable_checkpoint = true\nprovider_installation {\n  filesystem_mirror {\n    path = %q\n  }\n}\n", mirror)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func check(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	SkipOrFail(tb, "testbin", err.Error())
}

// SkipOrFail skips a test that lacks what, or fails it when the CI
// environment variable is set (on CI every prerequisite is installed).
func SkipOrFail(tb testing.TB, what, why string) {
	tb.Helper()
	if !Required() {
		tb.Skipf("%s: %s", what, why)
	}
	tb.Fatalf("%s: %s", what, why)
}

// cacheRoot is the directory beside the Go build cache.
func cacheRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	s := strings.TrimSpace(string(out))
	if err != nil || s == "" || s == "off" {
		return "", fmt.Errorf("go env GOCACHE: %v %q", err, s)
	}
	return filepath.Dir(s), nil
}

func ensureTofu() (string, error) {
	dir := os.Getenv(EnvTofuBin)
	if dir == "" {
		root, err := cacheRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "terratask-tofu-bin", TofuVersion)
	}
	bin := filepath.Join(dir, "tofu")
	if releaseTofu(bin) {
		return bin, nil
	}
	err := locked(dir+".lock", func() error {
		if releaseTofu(bin) {
			return nil
		}
		// dev=no as in OpenTofu's release builds: the binary reports
		// 1.6.3, not 1.6.3-dev.
		tmp, err := goInstall(filepath.Dir(dir), "github.com/opentofu/opentofu/cmd/tofu@"+TofuVersion,
			"-ldflags", "-X github.com/opentofu/opentofu/version.dev=no")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.Rename(filepath.Join(tmp, "tofu"), bin)
	})
	return bin, err
}

func ensureMirror() (string, error) {
	mirror := os.Getenv(EnvProviderMirror)
	if mirror == "" {
		root, err := cacheRoot()
		if err != nil {
			return "", err
		}
		mirror = filepath.Join(root, "terratask-provider-mirror")
	}
	dest := filepath.Join(mirror, "registry.terraform.io", "hashicorp", "time", TimeProviderVersion, runtime.GOOS+"_"+runtime.GOARCH)
	bin := filepath.Join(dest, "terraform-provider-time_v"+TimeProviderVersion)
	if executable(bin) {
		return mirror, nil
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", err
	}
	err := locked(filepath.Join(mirror, ".lock"), func() error {
		if executable(bin) {
			return nil
		}
		tmp, err := goInstall(dest, "github.com/hashicorp/terraform-provider-time@v"+TimeProviderVersion)
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		return os.Rename(filepath.Join(tmp, "terraform-provider-time"), bin)
	})
	return mirror, err
}

// goInstall builds pkg into a new temporary directory under parent.
func goInstall(parent, pkg string, flags ...string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, ".build-")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "testbin: building %s (cached for later runs)\n", pkg)
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"install"}, flags...), pkg)...)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("go install %s: %v\n%s", pkg, err, tail(out))
	}
	fmt.Fprintf(os.Stderr, "testbin: built %s in %s\n", pkg, time.Since(start).Round(time.Second))
	return tmp, nil
}

func locked(path string, fn func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l, err := filelock.Acquire(ctx, path)
	if err != nil {
		return err
	}
	defer l.Release()
	return fn()
}

// releaseTofu reports whether bin is tofu reporting TofuVersion without a
// -dev suffix.
func releaseTofu(bin string) bool {
	if !executable(bin) {
		return false
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+os.DevNull)
	out, err := cmd.Output()
	return err == nil && strings.HasPrefix(string(out), "OpenTofu "+TofuVersion+"\n")
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// TofuPath is Tofu for code without a testing.TB (a TestMain): it returns
// the path, or the error a test would skip or fail with.
func TofuPath() (string, error) {
	tofuOnce.Do(func() { tofuPath, tofuErr = ensureTofu() })
	return tofuPath, tofuErr
}

// Required reports whether a missing binary fails tests rather than skips
// them (the CI environment variable is set).
func Required() bool { return os.Getenv("CI") != "" }

// ProviderMirrorPath is ProviderMirror for code without a testing.TB.
func ProviderMirrorPath() (string, error) {
	mirrorOnce.Do(func() { mirrorDir, mirrorErr = ensureMirror() })
	return mirrorDir, mirrorErr
}
