// Package procgroup finds and stops the processes a command left behind.
//
// Terraform runs provisioners (local-exec) as child shells; when Terraform is
// interrupted it kills the shell but not the shell's own children, which are
// re-parented and keep running. A Tracker marks a command tree with an
// environment variable (inherited by every descendant that does not scrub its
// environment) and remembers the process groups of marked processes (which
// catches descendants that do scrub it but stay in the group), so Stop can end
// whatever is left once the command itself has exited.
//
// Finding them cheaply: every command the Tracker follows is a direct child
// of this process and the leader of a process group of its own (as
// terraform-exec starts Terraform), so Note, called while a command runs,
// learns its group by reading only this process's children; Stop then asks
// the kernel whether any recorded group still has a member (kill with
// signal 0) and reads all of /proc only when one has, or when the Tracker
// was made Thorough (a cancelled or failed command), so that processes that
// left the group but kept the marker are found too.
//
// The package reads /proc, so it works on Linux only; elsewhere List returns
// an error and nothing is found.
package procgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Proc is a process as seen in /proc/<pid>/stat.
type Proc struct {
	PID, PPID, PGID int
	// State is the one-letter state; 'Z' (zombie) and 'X' (dead) processes
	// have exited already.
	State byte
	// Start is the process's start time (clock ticks after boot): with PID
	// it names one process, even after the PID is reused.
	Start uint64
}

// Alive reports whether the process has not exited yet.
func (p Proc) Alive() bool { return p.State != 'Z' && p.State != 'X' }

// lists counts List calls (each reads all of /proc), for tests.
var lists atomic.Int64

// List returns every process visible in /proc.
func List() ([]Proc, error) {
	lists.Add(1)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	procs := make([]Proc, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := Stat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		procs = append(procs, p)
	}
	pruneEnvCache(procs)
	return procs, nil
}

// Stat reads one process's /proc/<pid>/stat.
func Stat(pid int) (Proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, err
	}
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses,
	// so the fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return Proc{}, errors.New("malformed stat")
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Proc{}, errors.New("malformed stat")
	}
	return Proc{PID: pid, PPID: ppid, PGID: pgid, State: f[0][0], Start: start}, nil
}

// envCache keeps the environment of processes by (PID, start time). A
// process's /proc/<pid>/environ is the environment it was started with and
// never changes, so each process is read once, however many scans see it:
// scans of a busy host then cost one stat read per process.
var envCache = struct {
	sync.Mutex
	m map[procKey][]byte
	// seen counts List calls; entries not seen by recent ones are dropped.
	seen map[procKey]uint64
	n    uint64
}{m: map[procKey][]byte{}, seen: map[procKey]uint64{}}

// maxEnvCache bounds the environment cache.
const maxEnvCache = 4096

type procKey struct {
	pid   int
	start uint64
}

// Env returns the environment the process started with, raw ("KEY=value"
// entries separated by NUL), read once per process.
func (p Proc) Env() ([]byte, error) {
	k := procKey{p.PID, p.Start}
	envCache.Lock()
	b, ok := envCache.m[k]
	envCache.Unlock()
	if ok {
		return b, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/environ")
	if err != nil {
		return nil, err
	}
	// A process that has just been forked shows its parent's environment
	// until it execs: only a live process older than a second is cached.
	if p.Alive() && p.Start != 0 && processAge(p) >= time.Second {
		envCache.Lock()
		if len(envCache.m) >= maxEnvCache {
			// Pruned by List, which runs rarely now: start afresh.
			envCache.m, envCache.seen = map[procKey][]byte{}, map[procKey]uint64{}
		}
		envCache.m[k] = b
		envCache.seen[k] = envCache.n
		envCache.Unlock()
	}
	return b, nil
}

// Getenv returns the value of key in the environment the process started
// with.
func (p Proc) Getenv(key string) (string, bool) {
	b, err := p.Env()
	if err != nil {
		return "", false
	}
	prefix := []byte(key + "=")
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v), true
		}
	}
	return "", false
}

// HasEnv reports whether the process started with exactly key=value.
func (p Proc) HasEnv(key, value string) bool {
	v, ok := p.Getenv(key)
	return ok && v == value
}

// clockTicks is USER_HZ, the unit of /proc start times (100 on Linux).
const clockTicks = 100

// processAge is how long ago p started, from /proc/uptime; zero when
// unknown.
func processAge(p Proc) time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	up, _, _ := strings.Cut(string(b), " ")
	secs, err := strconv.ParseFloat(up, 64)
	if err != nil {
		return 0
	}
	return time.Duration((secs - float64(p.Start)/clockTicks) * float64(time.Second))
}

// pruneEnvCache drops the environments of processes absent from procs.
func pruneEnvCache(procs []Proc) {
	envCache.Lock()
	defer envCache.Unlock()
	envCache.n++
	for _, p := range procs {
		k := procKey{p.PID, p.Start}
		if _, ok := envCache.m[k]; ok {
			envCache.seen[k] = envCache.n
		}
	}
	for k, n := range envCache.seen {
		if n+2 < envCache.n {
			delete(envCache.seen, k)
			delete(envCache.m, k)
		}
	}
}

// Find returns the live processes, other than this one, for which match
// returns true.
func Find(match func(Proc) bool) ([]Proc, error) {
	all, err := List()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []Proc
	for _, p := range all {
		if p.PID == self || p.PID == 1 || !p.Alive() {
			continue
		}
		if match(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Tracker follows one command tree marked by the environment variable
// Key=Value. It is safe for concurrent use.
type Tracker struct {
	Key, Value string

	mu     sync.Mutex
	groups map[int]bool
	// thorough makes Stop scan every process (see Thorough).
	thorough bool
}

// childrenReadable reports, once per process, whether this kernel lists a
// process's children (CONFIG_PROC_CHILDREN): without, Stop always reads all
// of /proc.
var childrenReadable = sync.OnceValue(func() bool {
	_, err := Children(os.Getpid())
	return err == nil
})

// marks caches which marker value each process started with, by (PID,
// start time), for processes found to carry one (a process not yet exec'd
// shows its parent's environment, so an absent marker is never cached).
// Note reads the environment of a child only once.
var marks = struct {
	sync.Mutex
	m map[procKey]string
}{m: map[procKey]string{}}

// markOf returns the value of key in p's environment, from the cache when
// p was seen with it before.
func markOf(p Proc, key string) (string, bool) {
	k := procKey{p.PID, p.Start}
	marks.Lock()
	v, ok := marks.m[k]
	marks.Unlock()
	if ok {
		return v, true
	}
	v, ok = p.Getenv(key)
	if ok && p.Start != 0 {
		marks.Lock()
		if len(marks.m) >= maxEnvCache {
			marks.m = map[procKey]string{}
		}
		marks.m[k] = v
		marks.Unlock()
	}
	return v, ok
}

// Children returns the PIDs of pid's children, read from
// /proc/PID/task/*/children (every thread's: a Go program forks from any
// of its threads).
func Children(pid int) ([]int, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(dir + "/" + t.Name()); serr != nil {
				continue // the thread ended meanwhile
			}
			return nil, err // no CONFIG_PROC_CHILDREN
		}
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// Note records the process groups of this process's marked children: cheap
// (it reads this process's children, not all of /proc), so call it while a
// command runs, once it has started.
func (t *Tracker) Note() {
	self := os.Getpid()
	kids, err := Children(self)
	if err != nil {
		return
	}
	own := syscall.Getpgrp()
	var groups []int
	for _, pid := range kids {
		p, err := Stat(pid)
		if err != nil || !p.Alive() || p.PGID <= 1 || p.PGID == own {
			continue
		}
		if v, ok := markOf(p, t.Key); ok && v == t.Value {
			groups = append(groups, p.PGID)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range groups {
		t.groups[g] = true
	}
}

// Thorough makes Stop read all of /proc whatever the recorded groups say:
// for a command that was interrupted or failed, whose processes may have
// left its group.
func (t *Tracker) Thorough() {
	t.mu.Lock()
	t.thorough = true
	t.mu.Unlock()
}

// settled reports whether Stop may skip the scan of /proc: this kernel
// lists children (so Note could record the groups), the Tracker is not
// thorough and no recorded group has a member left.
func (t *Tracker) settled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.thorough || !childrenReadable() {
		return false
	}
	for g := range t.groups {
		if err := syscall.Kill(-g, 0); !errors.Is(err, syscall.ESRCH) {
			return false
		}
	}
	return true
}

// NewTracker returns a Tracker for processes started with key=value in their
// environment.
func NewTracker(key, value string) *Tracker {
	return &Tracker{Key: key, Value: value, groups: map[int]bool{}}
}

// Scan records the process groups of the marked processes alive now (see
// Note). Call it while the command runs, so a descendant that scrubs its
// environment is still found through its group.
func (t *Tracker) Scan() { t.Note() }

// Members returns the live processes that carry the marker or belong to a
// recorded group, recording the groups of marked ones.
func (t *Tracker) Members() []Proc {
	own := syscall.Getpgrp()
	t.mu.Lock()
	defer t.mu.Unlock()
	procs, err := Find(func(p Proc) bool {
		if t.groups[p.PGID] {
			return true
		}
		if p.HasEnv(t.Key, t.Value) {
			if p.PGID > 1 && p.PGID != own {
				t.groups[p.PGID] = true
			}
			return true
		}
		return false
	})
	if err != nil {
		return nil
	}
	return procs
}

// Stop ends every member: SIGTERM first, SIGKILL for those still alive after
// grace. It returns how many processes it found. When the recorded groups
// are empty (and the Tracker is not thorough) it reads nothing more.
func (t *Tracker) Stop(grace time.Duration) int {
	if t.settled() {
		return 0
	}
	members := t.Members()
	if len(members) == 0 {
		return 0
	}
	Terminate(members, grace)
	return len(members)
}

// Terminate sends SIGTERM to procs, waits up to grace for them to exit, then
// sends SIGKILL to the rest and waits briefly for the kernel to reap them.
func Terminate(procs []Proc, grace time.Duration) {
	signalAll(procs, syscall.SIGTERM)
	left := waitGone(procs, grace)
	if len(left) == 0 {
		return
	}
	signalAll(left, syscall.SIGKILL)
	waitGone(left, 2*time.Second)
}

func signalAll(procs []Proc, sig syscall.Signal) {
	self := os.Getpid()
	for _, p := range procs {
		if p.PID > 1 && p.PID != self {
			_ = syscall.Kill(p.PID, sig)
		}
	}
}

// waitGone polls until none of procs is alive or d has passed, and returns
// the ones still alive. A pid counts as gone once it no longer exists, is a
// zombie, or now belongs to another process group (reused).
func waitGone(procs []Proc, d time.Duration) []Proc {
	deadline := time.Now().Add(d)
	for {
		var left []Proc
		for _, p := range procs {
			now, err := Stat(p.PID)
			if err == nil && now.Alive() && now.PGID == p.PGID {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(25 * time.Millisecond)
		procs = left
	}
}
