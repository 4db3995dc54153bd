// Package memtrim hands back to the kernel the pages of the running program's
// own binary that start-up touched once.
//
// terratask is one large binary (the Temporal server, its Web UI and SDK
// inside): starting it runs the initialisation of hundreds of packages, which
// reads most of the binary's code and read-only data once (registries of
// protobuf descriptors, dynamic config, types). Those pages are clean copies
// of the file, shared with the page cache, yet count in the process's
// resident set until the kernel needs the memory: in `terratask dev`, about
// 120 MiB of its 180 MiB at rest. Release asks the kernel to reclaim them at
// once (madvise MADV_PAGEOUT on the binary's read-only private mappings):
// whatever code runs afterwards is faulted back from the page cache, so the
// resident set becomes what the process actually uses. Writable mappings, and
// so the heap and any page the program changed, are never touched; on a
// kernel without MADV_PAGEOUT (before Linux 5.4) nothing happens.
package memtrim

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4).
const madvPageout = 21

// Release reclaims the pages of the running binary's read-only mappings and
// returns how many bytes of mappings it advised.
func Release() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		start, end, ok := readOnlyMapping(sc.Text(), exe)
		if !ok {
			continue
		}
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPageout)
		if errno != 0 {
			if errno == syscall.EINVAL {
				return total, errors.ErrUnsupported
			}
			return total, errno
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}

// readOnlyMapping parses a line of /proc/self/maps and reports whether it
// maps path privately without write access.
func readOnlyMapping(line, path string) (start, end uintptr, ok bool) {
	f := strings.Fields(line)
	if len(f) < 6 || f[5] != path || len(f[1]) != 4 || f[1][1] == 'w' || f[1][3] != 'p' {
		return 0, 0, false
	}
	lo, hi, found := strings.Cut(f[0], "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
