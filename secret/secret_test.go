package secret

import (
	"bytes"
	"errors"
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

func TestSealBytesBindsContext(t *testing.T) {
	box := testBox(t)
	plain := []byte("{\"serial\": 1, \"password\": \"hunter2\"}")
	sealed, err := box.SealBytes(plain, []byte("org\x00ws"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed bytes contain the plain text")
	}
	got, err := box.OpenBytes(sealed, []byte("org\x00ws"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenBytes: %q, %v", got, err)
	}
	if _, err := box.OpenBytes(sealed, []byte("org\x00other")); !errors.Is(err, ErrOpen) {
		t.Fatalf("OpenBytes with another context: %v, want ErrOpen", err)
	}
	if _, err := box.OpenBytes(sealed[:5], nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("OpenBytes of a short input: %v, want ErrOpen", err)
	}
}

func TestStateCredential(t *testing.T) {
	box := testBox(t)
	cred := box.StateCredential("task-1", "org", "ws")
	if len(cred) < 40 || cred != box.StateCredential("task-1", "org", "ws") {
		t.Fatalf("credential %q is short or not stable", cred)
	}
	if !box.CheckStateCredential(cred, "task-1", "org", "ws") {
		t.Fatal("the credential does not check")
	}
	// Each part is bound, and the parts cannot be shifted into each other.
	for _, other := range [][3]string{{"task-2", "org", "ws"}, {"task-1", "org2", "ws"}, {"task-1", "org", "ws2"}, {"task-1org", "", "ws"}} {
		if box.CheckStateCredential(cred, other[0], other[1], other[2]) {
			t.Fatalf("the credential of task-1/org/ws checks for %v", other)
		}
	}
	otherKey := make([]byte, KeySize)
	otherKey[0] = 1
	box2, err := NewBox(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if box2.CheckStateCredential(cred, "task-1", "org", "ws") {
		t.Fatal("a box of another key accepts the credential")
	}
	for _, c := range []struct {
		user  string
		id    string
		fence int64
		ok    bool
	}{
		{StateUser("task-a", 7), "task-a", 7, true},
		{StateUser("task.with.dots", 1<<33), "task.with.dots", 1 << 33, true},
		// A scheduled run's ID: no ':' may reach the basic-auth user name.
		{StateUser("task-a-2026-01-02T03:04:05Z", 3), "task-a-2026-01-02T03:04:05Z", 3, true},
		{"task-a", "", 0, false}, {"task-a.", "", 0, false}, {"task-a.-1", "", 0, false},
		{"task-a.01", "", 0, false}, {".5", "", 0, false}, {"task-a.x", "", 0, false},
	} {
		if strings.Contains(c.user, ":") {
			t.Errorf("state user %q holds ':'", c.user)
		}
		id, fence, ok := ParseStateUser(c.user)
		if ok != c.ok || (ok && (id != c.id || fence != c.fence)) {
			t.Errorf("ParseStateUser(%q) = %q, %d, %v", c.user, id, fence, ok)
		}
	}
}

// testBox returns a Box of a fixed, non-zero key.
func testBox(t *testing.T) *Box {
	t.Helper()
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i + 7)
	}
	box, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}
