//go:build unix

package app

import "syscall"

// restrictUmask makes what the process creates private to its user.
func restrictUmask() { syscall.Umask(0o077) }
