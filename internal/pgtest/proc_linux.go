package pgtest

import (
	"errors"
	"syscall"
)

// canSwitchUser reports whether sysProcAttr can run a command as another user.
const canSwitchUser = true

// sysProcAttr runs a command as su; a server also gets SIGQUIT (immediate
// shutdown) when the thread that started it exits, so it dies with the test
// binary however that ends.
func sysProcAttr(su serverUser, server bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if su.switchTo {
		attr.Credential = &syscall.Credential{Uid: uint32(su.uid), Gid: uint32(su.gid)}
	}
	if server {
		attr.Pdeathsig = syscall.SIGQUIT
	}
	return attr
}

// processAlive reports whether a process with the PID exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
