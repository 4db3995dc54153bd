package tfinstall

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// localTerraform returns the terraform on PATH and its version, or skips.
func localTerraform(t *testing.T) (string, string) {
	t.Helper()
	path, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform not on PATH")
	}
	v, err := BinaryVersion(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return path, v.String()
}

func TestEnsureFindsPathBinary(t *testing.T) {
	path, ver := localTerraform(t)
	in := New(Options{Dir: t.TempDir(), DisableDownload: true})
	wants := []string{"", ver, "~> " + ver}
	if !strings.Contains(ver, "-") { // constraints never match a pre-release
		wants = append(wants, ver[:strings.LastIndexByte(ver, '.')])
	}
	for _, want := range wants {
		r, err := in.Ensure(context.Background(), want)
		if err != nil {
			t.Fatalf("Ensure(%q): %v", want, err)
		}
		if r.Version != ver || r.Source != "path" {
			t.Errorf("Ensure(%q) = %+v, want version %s from path", want, r, ver)
		}
		if real, _ := filepath.EvalSymlinks(r.Path); real != mustEval(t, path) {
			t.Errorf("Ensure(%q) path %s, want %s", want, r.Path, path)
		}
	}
}

func TestEnsureUsesCacheDir(t *testing.T) {
	path, ver := localTerraform(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ver), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, filepath.Join(dir, ver, "terraform")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir()) // nothing on PATH
	in := New(Options{Dir: dir, DisableDownload: true})
	r, err := in.Ensure(context.Background(), ver)
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != "cache" || r.Version != ver || r.Path != filepath.Join(dir, ver, "terraform") {
		t.Fatalf("got %+v", r)
	}
	// Concurrent callers share one result.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := in.Ensure(context.Background(), ver); err != nil || got != r {
				t.Errorf("concurrent Ensure = %+v, %v", got, err)
			}
		}()
	}
	wg.Wait()
}

func TestEnsureReportsWhatItTried(t *testing.T) {
	// A releases mirror that has nothing, so the download fails at once
	// whether or not this machine reaches the internet.
	mirror := httptest.NewServer(http.NotFoundHandler())
	defer mirror.Close()
	t.Setenv("PATH", t.TempDir())
	in := New(Options{Dir: t.TempDir(), APIBaseURL: mirror.URL})
	_, err := in.Ensure(context.Background(), "1.0.0")
	var ie *InstallError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want *InstallError", err)
	}
	if len(ie.Tried) != 3 {
		t.Fatalf("tried %q, want PATH, cache and download", ie.Tried)
	}
	for i, prefix := range []string{"PATH", "cache", "download"} {
		if !strings.HasPrefix(ie.Tried[i], prefix) {
			t.Errorf("tried[%d] = %q, want prefix %q", i, ie.Tried[i], prefix)
		}
	}

	in = New(Options{Dir: t.TempDir(), DisableDownload: true})
	_, err = in.Ensure(context.Background(), "1.0.0")
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "download: disabled") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnsureRejectsInvalidVersion(t *testing.T) {
	in := New(Options{Dir: t.TempDir(), DisableDownload: true})
	for _, v := range []string{"abc", "1.x.y", ">= banana"} {
		if _, err := in.Ensure(context.Background(), v); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("Ensure(%q) = %v, want ErrInvalidVersion", v, err)
		}
	}
}

func mustEval(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
