package secret

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/task"
)

func TestSealOpenRoundTrip(t *testing.T) {
	key, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	s := task.Secrets{SensitiveVariables: map[string]any{"token": "t0ps3cret"}, Env: map[string]string{"AWS_SECRET": "aws-s3cret"}}
	sealed, err := box.Seal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "t0ps3cret") || strings.Contains(sealed, "aws-s3cret") || strings.Contains(sealed, "token") {
		t.Fatalf("sealed text shows the secret: %s", sealed)
	}
	got, err := box.Open(sealed)
	if err != nil || got.SensitiveVariables["token"] != "t0ps3cret" || got.Env["AWS_SECRET"] != "aws-s3cret" {
		t.Fatalf("%+v %v", got, err)
	}
	other, _ := NewBox(make([]byte, KeySize))
	if _, err := other.Open(sealed); err != ErrOpen {
		t.Fatalf("wrong key opened: %v", err)
	}
	if _, err := box.Open(sealed[:len(sealed)-4] + "AAAA"); err != ErrOpen {
		t.Fatalf("tampered data opened: %v", err)
	}
	if e, _ := box.Seal(task.Secrets{}); e != "" {
		t.Fatal("empty secrets sealed to data")
	}
}

func TestMasker(t *testing.T) {
	m := NewMasker(task.Secrets{
		SensitiveVariables: map[string]any{"a": "abc", "b": "abcdef", "n": 12345},
		Env:                map[string]string{"E": "envval"},
	})
	got := m.String("x abcdef y abc z envval 12345")
	if got != "x *** y *** z *** ***" {
		t.Fatalf("%q", got)
	}
	var nilMasker *Masker
	if nilMasker.String("s") != "s" {
		t.Fatal("nil masker")
	}
}

func TestParseKey(t *testing.T) {
	if _, err := ParseKey("short"); err == nil {
		t.Fatal("short key accepted")
	}
}
