package tfinstall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/internal/testbin"
)

// fakeTofu writes a script that answers `version -json` like tofu of
// version v. The real binary is tested below; these scripts let the search
// order be tested with several versions at once.
func fakeTofu(t *testing.T, path, v string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho '{\"terraform_version\":\"" + v + "\",\"platform\":\"linux_amd64\"}'\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTofuFinderSearchOrder(t *testing.T) {
	root := t.TempDir()
	versions := filepath.Join(root, "versions")
	fakeTofu(t, filepath.Join(versions, "1.6.2", "tofu"), "1.6.2")
	fakeTofu(t, filepath.Join(versions, "v1.7.0", "tofu"), "1.7.0")
	single := fakeTofu(t, filepath.Join(root, "single", "my-tofu"), "1.6.0")
	onPath := fakeTofu(t, filepath.Join(root, "bin", "tofu"), "1.8.1")

	f := NewTofuFinder([]string{single, versions})
	f.pathEnv = func() string {
		return filepath.Join(root, "empty") + string(os.PathListSeparator) + filepath.Dir(onPath)
	}
	ctx := context.Background()
	for want, path := range map[string]string{
		"":      single, // the first --tofu-path is the default
		"1.7.0": filepath.Join(versions, "v1.7.0", "tofu"),
		"1.6.2": filepath.Join(versions, "1.6.2", "tofu"),
		"1.8.1": onPath,
	} {
		r, err := f.Find(ctx, want)
		if err != nil {
			t.Fatalf("Find(%q): %v", want, err)
		}
		if r.Path != path {
			t.Errorf("Find(%q) = %s, want %s", want, r.Path, path)
		}
	}
	if got := strings.Join(f.Available(ctx), ","); got != "1.8.1,1.7.0,1.6.2,1.6.0" {
		t.Errorf("Available = %s", got)
	}

	_, err := f.Find(ctx, "1.9.0")
	var ee *EngineError
	if !errors.As(err, &ee) {
		t.Fatalf("want an EngineError, got %v", err)
	}
	msg := err.Error()
	for _, s := range []string{"OpenTofu", "version 1.9.0", "is 1.6.0", "is 1.8.1", "never downloaded", "--tofu-path"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q lacks %q", msg, s)
		}
	}
	if _, err := f.Find(ctx, "~> 1.6"); !errors.Is(err, ErrInvalidVersion) {
		t.Errorf("a constraint: %v", err)
	}
}

func TestTofuFinderSaysWhatItTried(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "nope")
	emptyDir := t.TempDir()
	f := NewTofuFinder([]string{missing, emptyDir})
	f.pathEnv = func() string { return emptyDir }
	_, err := f.Find(context.Background(), "")
	var ee *EngineError
	if !errors.As(err, &ee) {
		t.Fatalf("want an EngineError, got %v", err)
	}
	msg := err.Error()
	for _, s := range []string{"--tofu-path " + missing, "--tofu-path " + emptyDir + ": no tofu", "PATH (1 directories): no tofu", "any version"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q lacks %q", msg, s)
		}
	}
	if len(f.Available(context.Background())) != 0 {
		t.Error("Available lists versions with no binary")
	}
}

func TestTofuFinderRealBinary(t *testing.T) {
	bin := testbin.Tofu(t)
	f := NewTofuFinder([]string{bin})
	r, err := f.Find(context.Background(), strings.TrimPrefix(testbin.TofuVersion, "v"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != bin || "v"+r.Version != testbin.TofuVersion {
		t.Fatalf("got %+v", r)
	}
	// Through PATH too, as a directory entry of --tofu-path would find it.
	f = NewTofuFinder([]string{filepath.Dir(bin)})
	if r, err := f.Find(context.Background(), ""); err != nil || r.Path != bin {
		t.Fatalf("dir entry: %+v %v", r, err)
	}
}

func TestInstallerAvailable(t *testing.T) {
	path, ver := localTerraform(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "1.5.7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, filepath.Join(dir, "1.5.7", "terraform")); err != nil {
		t.Fatal(err)
	}
	in := New(Options{Dir: dir, DisableDownload: true})
	vs, download := in.Available(context.Background())
	if download || len(vs) != 2 || vs[0] != ver || vs[1] != "1.5.7" {
		t.Fatalf("Available = %v, %v; want [%s 1.5.7], false", vs, download, ver)
	}
	if _, download := New(Options{Dir: dir}).Available(context.Background()); !download {
		t.Fatal("a runner that downloads says it does not")
	}
}
