// Package filelock is an advisory lock on a file (flock(2)), exclusive or
// shared. It orders work between the goroutines of one process and between
// processes on one host: flock locks belong to an open file description, so
// two opens of the same path conflict even inside one process. Shared holders
// coexist with each other and exclude an exclusive one.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pollEvery is how often a waiting Acquire retries; flock itself cannot be
// interrupted by a context.
const pollEvery = 50 * time.Millisecond

// Lock is a held lock; Release frees it.
type Lock struct{ f *os.File }

// TryAcquire takes the lock on path exclusively if nobody holds it. It
// returns (nil, nil) when another holder has it.
func TryAcquire(path string) (*Lock, error) { return tryAcquire(path, unix.LOCK_EX) }

// TryAcquireShared takes the lock on path shared if no exclusive holder has
// it. It returns (nil, nil) when one does.
func TryAcquireShared(path string) (*Lock, error) { return tryAcquire(path, unix.LOCK_SH) }

// Acquire waits until it holds the lock on path exclusively or ctx is done.
func Acquire(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, unix.LOCK_EX)
}

// AcquireShared waits until it holds the lock on path shared or ctx is done.
func AcquireShared(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, unix.LOCK_SH)
}

func tryAcquire(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	ok, err := tryFlock(f, how)
	if err != nil || !ok {
		f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// tried, when set (by tests), is called after each try of acquire that
// found the lock held.
var tried func()

func acquire(ctx context.Context, path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		ok, err := tryFlock(f, how)
		if err != nil {
			f.Close()
			return nil, err
		}
		if ok {
			return &Lock{f: f}, nil
		}
		if tried != nil {
			tried()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// tryFlock takes the lock (how is LOCK_EX or LOCK_SH) without blocking.
func tryFlock(f *os.File, how int) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			return false, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
	}
}

// Release frees the lock. It is safe to call on a nil Lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
