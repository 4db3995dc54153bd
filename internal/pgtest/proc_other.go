//go:build !linux

package pgtest

import "syscall"

// canSwitchUser reports whether sysProcAttr can run a command as another user.
const canSwitchUser = false

// sysProcAttr has nothing to set outside Linux: the server runs as the
// current user and is stopped by Stop only.
func sysProcAttr(serverUser, bool) *syscall.SysProcAttr { return nil }

// processAlive reports whether a process with the PID exists: outside Linux
// it is assumed to, so stale files are never removed.
func processAlive(int) bool { return true }
