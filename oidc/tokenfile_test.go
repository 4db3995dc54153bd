package oidc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWriteTokenFile: the file is 0600, replaced whole, and no temporary
// file is left behind.
func TestWriteTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	for _, token := range []string{"first.token.value", "second"} {
		if err := WriteTokenFile(path, token); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != token {
			t.Fatalf("token file %q, %v; want %q", b, err, token)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the token file only", len(entries))
	}
	if err := WriteTokenFile(filepath.Join(dir, "missing", "token"), "x"); err == nil {
		t.Error("WriteTokenFile into a missing directory succeeded")
	}
}

func TestRenewAt(t *testing.T) {
	issued := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := RenewAt(issued, issued.Add(30*time.Minute)), issued.Add(20*time.Minute); !got.Equal(want) {
		t.Errorf("RenewAt = %v, want %v", got, want)
	}
}

// TestRefresher: the token file is renewed at two thirds of each token's
// life, a reader never sees a partial token, and Stop stops it.
func TestRefresher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	var n atomic.Int64
	r := &Refresher{Path: path, Mint: func(context.Context) (string, time.Time, error) {
		return fmt.Sprintf("token-%04d", n.Add(1)) + strings.Repeat(".", 4096), time.Now().Add(150 * time.Millisecond), nil
	}}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.HasPrefix(string(b), "token-0001") {
		t.Fatalf("after Start the file holds %.10q, %v", b, err)
	}
	// Read the file while it is renewed: always a whole token.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil || len(b) != 10+4096 || !strings.HasPrefix(string(b), "token-") {
				t.Errorf("a reader saw %d bytes, %v", len(b), err)
				return
			}
		}
	}()
	time.Sleep(600 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := r.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	minted := n.Load()
	if minted < 4 {
		t.Errorf("%d tokens minted in 600ms of 150ms tokens, want renewals every 100ms", minted)
	}
	time.Sleep(200 * time.Millisecond)
	if n.Load() != minted {
		t.Error("renewed after Stop")
	}
}

// TestRefresherFails: a first mint that fails fails Start; renewals that
// keep failing past the token's expiry make Stop report it.
func TestRefresherFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	boom := errors.New("runner API unreachable")
	r := &Refresher{Path: path, Mint: func(context.Context) (string, time.Time, error) { return "", time.Time{}, boom }}
	if err := r.Start(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Start = %v, want the mint's error", err)
	}

	var n atomic.Int64
	r = &Refresher{Path: path, Retry: 20 * time.Millisecond, Mint: func(context.Context) (string, time.Time, error) {
		if n.Add(1) > 1 {
			return "", time.Time{}, boom
		}
		return "only", time.Now().Add(90 * time.Millisecond), nil
	}}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := r.Stop(); !errors.Is(err, boom) {
		t.Errorf("Stop = %v, want the failed renewal past expiry", err)
	}
	if n.Load() < 3 {
		t.Errorf("%d mints: failed renewals are not retried", n.Load())
	}

	// Failures before the expiry, then success: nothing to report.
	n.Store(0)
	r = &Refresher{Path: path, Retry: 10 * time.Millisecond, Mint: func(context.Context) (string, time.Time, error) {
		if k := n.Add(1); k == 2 {
			return "", time.Time{}, boom
		}
		return "t", time.Now().Add(900 * time.Millisecond), nil
	}}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond)
	if err := r.Stop(); err != nil {
		t.Errorf("Stop after a recovered renewal = %v", err)
	}
}
