package app

import (
	"os"
	"path/filepath"
	"testing"
)

// A data dir an earlier version left readable by others is closed, and
// what the process creates afterwards is private.
func TestPrivateDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "runners", "local", "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"secret.key", "temporal.db", filepath.Join("runners", "host-id")} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateDataDir(dir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		"": 0o700, "secret.key": 0o600, "temporal.db": 0o600, "runners": 0o700,
		filepath.Join("runners", "host-id"): 0o600, filepath.Join("runners", "local"): 0o700,
	} {
		fi, err := os.Stat(filepath.Join(dir, path))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%q: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "new")); fi.Mode().Perm() != 0o600 {
		t.Errorf("a file made afterwards has mode %v", fi.Mode().Perm())
	}
}
