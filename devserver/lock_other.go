//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package devserver

import (
	"errors"
	"fmt"
	"os"
)

// fileLock falls back to an exclusively created file on platforms without
// flock. A crashed process leaves the file behind; delete it by hand then.
type fileLock struct {
	path string
}

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w (lock file %s exists; remove it if no dev server is running)", ErrDBInUse, path)
		}
		return nil, fmt.Errorf("create lock file: %w", err)
	}
	_ = f.Close()
	return &fileLock{path: path}, nil
}

func (l *fileLock) unlock() error {
	if l == nil || l.path == "" {
		return nil
	}
	err := os.Remove(l.path)
	l.path = ""
	return err
}
