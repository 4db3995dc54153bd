package oidc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// WriteTokenFile writes token to path atomically: a temporary file in the
// same directory (mode 0600), synced, renamed over path. A reader (an SDK
// rereading its web identity token) sees the old token or the new one,
// never a part of either. The directory must exist.
func WriteTokenFile(path, token string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return fmt.Errorf("oidc: writing token file: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(token)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("oidc: writing token file %s: %w", path, err)
	}
	return nil
}

// RenewAt returns when to replace a token valid from issued to expires: at
// two thirds of its life, so a renewal that fails can be retried well
// before the token the step reads expires.
func RenewAt(issued, expires time.Time) time.Time {
	return issued.Add(expires.Sub(issued) * 2 / 3)
}

// MintFunc mints a step's token (through the runner API, say): the token
// and when it expires.
type MintFunc func(ctx context.Context) (token string, expires time.Time, err error)

// Refresher keeps a step's token file fresh: it writes a token before the
// step starts and a new one at two thirds of each token's life, for steps
// that outlive their first token. It knows nothing of how tokens are
// minted (Mint does).
type Refresher struct {
	// Path is the token file (WriteTokenFile).
	Path string
	// Mint mints each token.
	Mint MintFunc
	// Retry is the wait after a failed renewal (default 10s, and never
	// past the current token's expiry).
	Retry time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// Start mints and writes the first token, returning the error when it
// cannot (the step should not start), then renews the token in the
// background until ctx is done or Stop is called.
func (r *Refresher) Start(ctx context.Context) error {
	if r.done != nil {
		return errors.New("oidc: refresher already started")
	}
	expires, err := r.renew(ctx)
	if err != nil {
		return err
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go r.run(ctx, time.Now(), expires)
	return nil
}

// Stop stops renewing. It returns the error of the first renewal that
// failed after the token it should have replaced had expired (the step
// ran for a while with an expired token), nil when there was none.
func (r *Refresher) Stop() error {
	if r.done == nil {
		return nil
	}
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// renew mints a token and writes it.
func (r *Refresher) renew(ctx context.Context) (time.Time, error) {
	token, expires, err := r.Mint(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("oidc: minting the step's token: %w", err)
	}
	if err := WriteTokenFile(r.Path, token); err != nil {
		return time.Time{}, err
	}
	return expires, nil
}

// run renews the token written at issued, valid until expires, until ctx
// is done.
func (r *Refresher) run(ctx context.Context, issued, expires time.Time) {
	defer close(r.done)
	retry := r.Retry
	if retry <= 0 {
		retry = 10 * time.Second
	}
	at := RenewAt(issued, expires)
	for {
		timer := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		now := time.Now()
		next, err := r.renew(ctx)
		if err == nil {
			expires, at = next, RenewAt(now, next)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !now.Before(expires) {
			r.expired(err)
		}
		at = now.Add(retry)
		if at.After(expires) && now.Before(expires) {
			at = expires
		}
	}
}

// expired records err, a renewal that failed once the token had expired,
// unless one was recorded before.
func (r *Refresher) expired(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}
