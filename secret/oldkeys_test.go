package secret

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/task"
)

func TestRotatedBoxOpensWhatTheOldKeySealed(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	old, _ := NewBox(oldKey)
	sealed, err := old.Seal(task.Secrets{Env: map[string]string{"TOKEN": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	state, _ := old.SealBytes([]byte(`{"serial":1}`), []byte("org/ws"))
	cred := old.StateCredential("task-1.1", "org", "ws")

	rotated, _ := NewBox(newKey)
	if _, err := rotated.Open(sealed); err == nil {
		t.Fatal("a box without the old key opened old secrets")
	}
	if err := rotated.AcceptOld(oldKey); err != nil {
		t.Fatal(err)
	}
	s, err := rotated.Open(sealed)
	if err != nil || s.Env["TOKEN"] != "s3cret" {
		t.Fatalf("old secrets after rotation: %v %v", s, err)
	}
	if plain, err := rotated.OpenBytes(state, []byte("org/ws")); err != nil || string(plain) != `{"serial":1}` {
		t.Fatalf("old state after rotation: %q %v", plain, err)
	}
	if _, err := rotated.OpenBytes(state, []byte("org/other")); err == nil {
		t.Fatal("old state opened in another context")
	}
	if !rotated.CheckStateCredential(cred, "task-1.1", "org", "ws") || rotated.CheckStateCredential(cred, "task-1.2", "org", "ws") {
		t.Fatal("old state credential")
	}
	// New sealing uses the new key only.
	fresh, _ := rotated.Seal(task.Secrets{Env: map[string]string{"A": "b"}})
	if _, err := old.Open(fresh); err == nil {
		t.Fatal("the old key opened what the rotated box sealed")
	}
	if err := rotated.AcceptOld([]byte("short")); err == nil {
		t.Fatal("short old key accepted")
	}
}

func TestReadKeysFile(t *testing.T) {
	dir := t.TempDir()
	k1 := "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	p := filepath.Join(dir, "old")
	os.WriteFile(p, []byte("# rotated 2026-11\n\n"+k1+"\n  "+k1+"  \n"), 0o600)
	keys, err := ReadKeysFile(p)
	if err != nil || len(keys) != 2 || keys[0][0] != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	os.WriteFile(p, []byte(k1+"\nnot-a-key-value\n"), 0o600)
	_, err = ReadKeysFile(p)
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "not-a-key-value") {
		t.Fatalf("bad line: %v", err)
	}
	if _, err := ReadKeysFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file")
	}
}
