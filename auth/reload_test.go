package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func writeKeys(t *testing.T, path string, keys map[string]string) {
	t.Helper()
	body := "keys:\n"
	for name, raw := range keys {
		body += fmt.Sprintf("  - name: %s\n    org: acme\n    role: viewer\n    hash: %s\n", name, HashKey(raw))
	}
	// Write then rename, as an editor or a config manager would.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchReloadSwapsKeys drives the SIGHUP reload loop of `terratask
// server` and `terratask dev` with a real file and a signal channel.
func TestWatchReloadSwapsKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	writeKeys(t, path, map[string]string{"alice": "raw-alice"})
	devAdmin := Key{Name: "dev-admin", Org: "default", Role: RoleAdmin, Hash: HashKey("raw-dev")}
	k, err := NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Reload(path, k, devAdmin); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ch := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchReload(ctx, ch, path, k, zap.New(core), devAdmin)
	}()
	authenticates := func(raw string) bool { _, ok := k.Authenticate(raw); return ok }
	if !authenticates("raw-alice") || !authenticates("raw-dev") {
		t.Fatal("initial keys")
	}

	// A new file and a SIGHUP: bob in, alice out, the extra key kept.
	writeKeys(t, path, map[string]string{"bob": "raw-bob"})
	if authenticates("raw-bob") {
		t.Fatal("reloaded before the signal")
	}
	ch <- syscall.SIGHUP
	waitFor(t, "bob's key", func() bool { return authenticates("raw-bob") })
	if authenticates("raw-alice") || !authenticates("raw-dev") {
		t.Fatal("after reload: alice still in, or the dev key lost")
	}

	// A broken file keeps the old keys and says so, without key material.
	for i, broken := range []string{"keys: [", "keys:\n  - name: x\n    org: acme\n    role: root\n    hash: " + HashKey("raw-x") + "\n", ""} {
		if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		ch <- syscall.SIGHUP
		waitFor(t, "the reload error", func() bool {
			return logs.FilterMessage("reloading keys file; keeping the old keys").Len() == i+1
		})
		if !authenticates("raw-bob") || !authenticates("raw-dev") || authenticates("raw-x") {
			t.Fatalf("broken file %d changed the keys", i)
		}
	}
	// A missing file too.
	os.Remove(path)
	ch <- syscall.SIGHUP
	waitFor(t, "the reload error", func() bool {
		return logs.FilterMessage("reloading keys file; keeping the old keys").Len() == 4
	})
	if !authenticates("raw-bob") {
		t.Fatal("a missing file dropped the keys")
	}
	// A duplicate of the extra key's name is refused.
	if err := os.WriteFile(path, []byte("keys:\n  - name: dev-admin\n    org: acme\n    role: admin\n    hash: "+HashKey("raw-evil")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch <- syscall.SIGHUP
	waitFor(t, "the reload error", func() bool {
		return logs.FilterMessage("reloading keys file; keeping the old keys").Len() == 5
	})
	if authenticates("raw-evil") || !authenticates("raw-dev") {
		t.Fatal("a file key took the extra key's name")
	}
	for _, e := range logs.All() {
		for _, raw := range []string{"raw-bob", "raw-dev", "raw-x", "raw-evil"} {
			if s := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(s, raw) {
				t.Fatalf("log holds a raw key: %s", s)
			}
		}
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchReload did not return when its context ended")
	}
}

func TestWatchReloadJSONAndClosedChannel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	k, _ := NewKeyring(nil)
	body := fmt.Sprintf(`{"keys":[{"name":"ci","org":"acme","role":"operator","agent":"agent-1","hash":%q}]}`, HashKey("raw-ci"))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { defer close(done); WatchReload(context.Background(), ch, path, k, nil) }()
	ch <- syscall.SIGHUP
	waitFor(t, "the JSON key", func() bool { p, ok := k.Authenticate("raw-ci"); return ok && p.Agent == "agent-1" })
	close(ch)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchReload did not return when its channel closed")
	}
}
