//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package devserver

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// fileLock is an exclusive advisory lock (flock) on a file next to the
// database. flock locks belong to the open file description, so a second
// lock attempt fails even from the same process, and the kernel drops the
// lock when the process dies: there are no stale locks to clean up.
type fileLock struct {
	f *os.File
}

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock file %s%s)", ErrDBInUse, path, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Record who holds the lock, for the error message above. Best effort.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &fileLock{f: f}, nil
}

func readHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if pid == "" {
		return ""
	}
	return ", held by pid " + pid
}

func (l *fileLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Leave the file in place: deleting it would let a concurrent opener lock
	// an inode that is about to vanish. Closing the descriptor drops the lock.
	err := l.f.Close()
	l.f = nil
	return err
}
