package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of CPU times in /proc/PID/stat (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// rssKiB reads a VmRSS-style field ("VmRSS", "VmHWM") of /proc/PID/status in
// KiB.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// RSSMiB returns the resident set size of a process in MiB.
func RSSMiB(pid int) (float64, error) {
	kib, err := procStatusKiB(pid, "VmRSS")
	return float64(kib) / 1024, err
}

// HWMMiB returns the peak resident set size of a process since it started,
// in MiB.
func HWMMiB(pid int) (float64, error) {
	kib, err := procStatusKiB(pid, "VmHWM")
	return float64(kib) / 1024, err
}

// CPUTimes are a process's CPU times: its own, and those of its children
// that it waited for (for terratask dev: the terraform processes).
type CPUTimes struct {
	Self     time.Duration
	Children time.Duration
}

// Sub returns c - o.
func (c CPUTimes) Sub(o CPUTimes) CPUTimes {
	return CPUTimes{Self: c.Self - o.Self, Children: c.Children - o.Children}
}

// ProcCPU reads utime+stime and cutime+cstime of /proc/PID/stat.
func ProcCPU(pid int) (CPUTimes, error) {
	f, err := statFields(pid)
	if err != nil {
		return CPUTimes{}, err
	}
	// f[0] is field 3 (state): utime is field 14, so f[11].
	if len(f) < 15 {
		return CPUTimes{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	n := make([]int64, 4)
	for i := range n {
		if n[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return CPUTimes{}, err
		}
	}
	return CPUTimes{
		Self:     time.Duration(n[0]+n[1]) * clockTick,
		Children: time.Duration(n[2]+n[3]) * clockTick,
	}, nil
}

// statFields returns the fields of /proc/PID/stat after the command name,
// starting with the state (field 3).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// CountChildren counts the live processes whose parent is pid and whose
// command name is comm.
func CountChildren(pid int, comm string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	want := strconv.Itoa(pid)
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open {
			continue
		}
		if string(b[open+1:close]) != comm {
			continue
		}
		f := strings.Fields(string(b[close+1:]))
		if len(f) > 1 && f[1] == want && child != pid {
			n++
		}
	}
	return n
}

// MachineBusy is the CPU time all processes of the machine used since boot
// (every field of /proc/stat's cpu line but idle and iowait).
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var busy int64
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}

// selfAndChildrenCPU is the CPU time of this process and of its children
// that have been waited for.
func selfAndChildrenCPU() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())
		}
	}
	return total
}
