package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The fault suite (issue 27): dev plus two `terratask runner` hosts of one
// runner ID, state on dev's HTTP backend, a task whose apply's provisioners
// each hold a connection to an effects server on loopback (so the server
// sees when a provisioner runs and when it dies) and then report their side
// effect. A host is frozen with SIGSTOP, as a paused VM or a stalled process
// would be. Each scenario asserts that no two hosts' provisioners run at
// once, that the task ends true and that its log does not change after the
// end, and reports side effects and takeover time.

// effects is the test's side-effects server.
type effects struct {
	port int
	mu   sync.Mutex
	// holds are the provisioners' held connections; done the side effects.
	holds []hold
	done  []effect
}

type hold struct {
	res, cwd    string
	open, close time.Time // close zero while open
	completed   bool
}

type effect struct {
	res, cwd string
	at       time.Time
}

func startEffects(t *testing.T) *effects {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &effects{port: ln.Addr().(*net.TCPAddr).Port}
	mux := http.NewServeMux()
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		secs, _ := strconv.ParseFloat(r.URL.Query().Get("secs"), 64)
		e.mu.Lock()
		i := len(e.holds)
		e.holds = append(e.holds, hold{res: r.URL.Query().Get("res"), cwd: r.URL.Query().Get("cwd"), open: time.Now()})
		e.mu.Unlock()
		completed := false
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			completed = true
		case <-r.Context().Done(): // the provisioner died
		}
		e.mu.Lock()
		e.holds[i].close, e.holds[i].completed = time.Now(), completed
		e.mu.Unlock()
		if completed {
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("/effect", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.done = append(e.done, effect{res: r.URL.Query().Get("res"), cwd: r.URL.Query().Get("cwd"), at: time.Now()})
		e.mu.Unlock()
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return e
}

func (e *effects) snapshot() ([]hold, []effect) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]hold(nil), e.holds...), append([]effect(nil), e.done...)
}

// faultHost is a runner host of the suite.
type faultHost struct {
	name string
	p    *runnerProc
	dir  string
	id   string
}

// hostOf names the host whose work dir cwd is in.
func hostOf(hosts []*faultHost, cwd string) string {
	for _, h := range hosts {
		if strings.HasPrefix(cwd, h.dir+string(filepath.Separator)) {
			return h.name
		}
	}
	return "?" + cwd
}

// descendants are pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppidOf(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func ppidOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// freeze stops the runner process (whole: and everything it started: the
// watchdog, bubblewrap, Terraform, providers, provisioners) and returns
// what it stopped. Stopping repeats until no new process appears.
func freeze(t *testing.T, h *faultHost, whole bool) []int {
	t.Helper()
	pid := h.p.cmd.Process.Pid
	if !whole {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		return []int{pid}
	}
	stopped := map[int]bool{}
	for round := 0; round < 20; round++ {
		fresh := 0
		for _, p := range descendants(pid) {
			if !stopped[p] {
				_ = syscall.Kill(p, syscall.SIGSTOP)
				stopped[p] = true
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	var out []int
	for p := range stopped {
		out = append(out, p)
	}
	return out
}

func thaw(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
}

// overlap is how long provisioners of two different hosts ran at once,
// not counting the time a frozen host's were stopped ([f0, f1] on frozen).
func overlap(hosts []*faultHost, holds []hold, frozen string, f0, f1 time.Time, end time.Time) time.Duration {
	var total time.Duration
	for i := range holds {
		for j := i + 1; j < len(holds); j++ {
			a, b := holds[i], holds[j]
			ha, hb := hostOf(hosts, a.cwd), hostOf(hosts, b.cwd)
			if ha == hb {
				continue
			}
			ac, bc := a.close, b.close
			if ac.IsZero() {
				ac = end
			}
			if bc.IsZero() {
				bc = end
			}
			from, to := later(a.open, b.open), earlier(ac, bc)
			if !to.After(from) {
				continue
			}
			d := to.Sub(from)
			if !f0.IsZero() && (ha == frozen || hb == frozen) {
				// Frozen, the frozen host's provisioner ran nothing.
				if fo, ft := later(from, f0), earlier(to, f1); ft.After(fo) {
					d -= ft.Sub(fo)
				}
			}
			total += d
		}
	}
	return total
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// faultFleet is dev, two hosts of runner "faults" on dev's state backend,
// and the effects server.
type faultFleet struct {
	dev   *devProc
	hosts []*faultHost
	eff   *effects
}

func startFaultFleet(t *testing.T) *faultFleet {
	t.Helper()
	dir := t.TempDir()
	dev, err := startDev(filepath.Join(dir, "dev"), "faults-key")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.kill() })
	f := &faultFleet{dev: dev, eff: startEffects(t)}
	for _, name := range []string{"r1", "r2"} {
		hd := filepath.Join(dir, name)
		p := startRunner(t, dev, "faults", hd, filepath.Join(dir, "state-"+name), "TERRATASK_STATE_URL="+dev.api)
		f.hosts = append(f.hosts, &faultHost{name: name, p: p, dir: hd, id: p.hostID(t)})
	}
	return f
}

func (f *faultFleet) create(t *testing.T, name, workspace string) Task {
	t.Helper()
	return f.dev.create(t, map[string]any{
		"name": name, "agent_id": "agent-e2e", "runner_id": "faults",
		"parameters": map[string]any{"files": fixture(t, "faults"), "workspace": workspace, "parallelism": 1,
			"variables": map[string]any{"effects_port": f.eff.port, "hold_seconds": 2}},
	})
}

func (f *faultFleet) host(id string) *faultHost {
	for _, h := range f.hosts {
		if h.id == id {
			return h
		}
	}
	return nil
}

// waitApplying waits until the task's apply has finished one provisioner
// and runs the next, as the effects server sees it (not the status route,
// whose progress may lag under load), and returns the host that runs it.
func (f *faultFleet) waitApplying(t *testing.T, id string) *faultHost {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		holds, _ := f.eff.snapshot()
		done := 0
		for _, h := range holds {
			if h.completed {
				done++
			}
		}
		for _, h := range holds {
			if h.close.IsZero() && done >= 1 {
				for _, fh := range f.hosts {
					if hostOf(f.hosts, h.cwd) == fh.name {
						return fh
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the apply never got under way: %+v\n%v", holds, f.dev.logs(t, id, "?level=warn,error"))
		}
		var s Status
		if code, _ := f.dev.request(t, http.MethodGet, "/api/v1/tasks/"+id+"/status", nil, &s); code == http.StatusOK && terminal(s) {
			t.Fatalf("ended before the fault: %+v\n%v", s, f.dev.logs(t, id, "?level=warn,error"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// report logs a scenario's figures: side effects per resource, overlap,
// and when the other host's provisioners first ran after the fault.
func (f *faultFleet) report(t *testing.T, frozen *faultHost, whole bool, f0, f1 time.Time) (time.Duration, map[string]int) {
	t.Helper()
	holds, done := f.eff.snapshot()
	s0 := time.Time{} // a runner-only freeze stops no provisioner
	if whole {
		s0 = f0
	}
	over := overlap(f.hosts, holds, frozen.name, s0, f1, time.Now())
	per := map[string]int{}
	for _, e := range done {
		per[e.res]++
	}
	var takeover time.Duration
	for _, h := range holds {
		if hostOf(f.hosts, h.cwd) != frozen.name && h.open.After(f0) {
			takeover = h.open.Sub(f0)
			break
		}
	}
	keys := make([]string, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s:%d", k, per[k])
	}
	t.Logf("side effects per resource:%s; overlap of two hosts' provisioners: %s; other host's first provisioner %s after the fault",
		b.String(), over.Round(time.Millisecond), takeover.Round(100*time.Millisecond))
	for _, h := range holds {
		t.Logf("  hold res=%s host=%s open=+%s close=+%s completed=%v", h.res, hostOf(f.hosts, h.cwd),
			h.open.Sub(f0).Round(10*time.Millisecond), h.close.Sub(f0).Round(10*time.Millisecond), h.completed)
	}
	return over, per
}

// checkSettled asserts the ended task's log does not change after its end,
// even once the frozen host is back (given a few seconds to speak).
func (f *faultFleet) checkSettled(t *testing.T, id string) {
	t.Helper()
	before := f.dev.logs(t, id, "?limit=10000")
	time.Sleep(5 * time.Second)
	after := f.dev.logs(t, id, "?limit=10000")
	if len(after) != len(before) {
		var added []string
		for _, l := range after[len(before):] {
			added = append(added, l.Message)
		}
		t.Errorf("%d log entries were added after the task ended: %q", len(after)-len(before), added)
	}
	checkNoLineDoubledOrLost(t, after)
}

// checkOutputs asserts the task completed with every resource in its state.
func (f *faultFleet) checkCompleted(t *testing.T, id string) {
	t.Helper()
	got := f.dev.get(t, id)
	if got.Status != "completed" || fmt.Sprint(got.Result.Output["effects"]) != "5" {
		t.Fatalf("task ended %s with outputs %v\n%v", got.Status, got.Result.Output, f.dev.logs(t, id, "?level=warn,error"))
	}
}

// settled checks a task that ended after a fault of victim's (f0 to f1;
// whole when the host's every process was stopped): completed, its log
// fixed, no two hosts' applies at once. It returns the side effects per
// resource.
func (f *faultFleet) settled(t *testing.T, id string, victim *faultHost, whole bool, f0, f1 time.Time) map[string]int {
	t.Helper()
	f.checkCompleted(t, id)
	f.checkSettled(t, id)
	over, per := f.report(t, victim, whole, f0, f1)
	if over > 0 {
		t.Errorf("two hosts' applies of one workspace overlapped for %s", over)
	}
	return per
}

// runFreeze freezes the applying host (its runner only, or whole) for
// frozenFor, or until the task ends if sooner, and checks the outcome.
func runFreeze(t *testing.T, whole bool, frozenFor time.Duration) {
	f := startFaultFleet(t)
	tk := f.create(t, "freeze", "ws-freeze")
	victim := f.waitApplying(t, tk.ID)
	f0 := time.Now()
	pids := freeze(t, victim, whole)
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			thaw(pids)
		}
	})
	// While frozen, the task must move to the other host and complete.
	ended := make(chan Status, 1)
	go func() {
		seen := f.dev.waitStatus(t, tk.ID, 4*time.Minute, terminal)
		ended <- seen[len(seen)-1]
	}()
	var end Status
	select {
	case end = <-ended:
	case <-time.After(frozenFor):
	}
	f1 := time.Now()
	thaw(pids)
	thawed = true
	if end.Status == "" {
		end = <-ended
	}
	if end.Status != "completed" {
		t.Fatalf("the task ended %s\n%v", end.Status, f.dev.logs(t, tk.ID, "?level=warn,error"))
	}
	per := f.settled(t, tk.ID, victim, whole, f0, f1)
	for i := 0; i < 5; i++ {
		if per[strconv.Itoa(i)] < 1 {
			t.Errorf("resource %d's side effect never happened", i)
		}
	}
}

// The runner host is killed (kill -9): its watchdog reads the end of its
// stdin and kills the sandboxes (which bubblewrap's --die-with-parent kills
// anyway); the other host takes over once the lock's lease has lapsed.
func TestFaultRunnerKilled(t *testing.T) {
	t.Parallel()
	f := startFaultFleet(t)
	tk := f.create(t, "killed", "ws-killed")
	victim := f.waitApplying(t, tk.ID)
	f0 := time.Now()
	_ = victim.p.cmd.Process.Kill()
	<-victim.p.done
	f.dev.waitStatus(t, tk.ID, 4*time.Minute, terminal)
	f.settled(t, tk.ID, victim, false, f0, time.Now())
}

// The whole host freezes for less than the heartbeat timeout: nothing
// moves, nothing is killed, the apply goes on where it was, and no side
// effect happens twice.
func TestFaultShortWholeHostFreeze(t *testing.T) {
	t.Parallel()
	f := startFaultFleet(t)
	tk := f.create(t, "short", "ws-short")
	victim := f.waitApplying(t, tk.ID)
	f0 := time.Now()
	pids := freeze(t, victim, true)
	time.Sleep(5 * time.Second)
	thaw(pids)
	f1 := time.Now()
	f.dev.waitStatus(t, tk.ID, 4*time.Minute, terminal)
	per := f.settled(t, tk.ID, victim, true, f0, f1)
	for i := 0; i < 5; i++ {
		if n := per[strconv.Itoa(i)]; n != 1 {
			t.Errorf("resource %d's side effect happened %d times, want once (a short freeze moves nothing)", i, n)
		}
	}
}

// Only the runner process freezes: its Terraform runs on, until the
// watchdog kills it when its lease runs out, before Temporal gives the
// step to the other host and before the state server hands on the lock.
func TestFaultRunnerFreeze(t *testing.T) {
	t.Parallel()
	runFreeze(t, false, 45*time.Second)
}

// The whole host freezes, past every timeout: the other host takes over
// once the frozen attempt's lease has expired; when the frozen host wakes,
// its watchdog kills its attempt before it does anything.
func TestFaultWholeHostFreeze(t *testing.T) {
	t.Parallel()
	runFreeze(t, true, 60*time.Second)
}

// A task cancelled while its runner is frozen is `cancelled` only once its
// Terraform is gone, and the next task of the workspace applies only then.
func TestFaultCancelDuringFreeze(t *testing.T) {
	t.Parallel()
	f := startFaultFleet(t)
	first := f.create(t, "first", "ws-cancel")
	second := f.create(t, "second", "ws-cancel")
	victim := f.waitApplying(t, first.ID)
	f0 := time.Now()
	pids := freeze(t, victim, false)
	defer thaw(pids)
	if code, _ := f.dev.request(t, http.MethodPut, "/api/v1/tasks/"+first.ID+"/cancel", nil, nil); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	seen := f.dev.waitStatus(t, first.ID, 3*time.Minute, terminal)
	cancelledAt := time.Now()
	if last := seen[len(seen)-1]; last.Status != "cancelled" {
		t.Fatalf("the cancelled task ended %s", last.Status)
	}
	// When it shows cancelled, none of its provisioners runs.
	holds, _ := f.eff.snapshot()
	for _, h := range holds {
		if hostOf(f.hosts, h.cwd) == victim.name && (h.close.IsZero() || h.close.After(cancelledAt)) {
			t.Errorf("a provisioner of the cancelled task still ran when it showed cancelled (opened +%s)", h.open.Sub(f0).Round(10*time.Millisecond))
		}
	}
	end := f.dev.waitStatus(t, second.ID, 4*time.Minute, terminal)
	f1 := time.Now()
	thaw(pids)
	if last := end[len(end)-1]; last.Status != "completed" {
		t.Fatalf("the second task ended %s\n%v", last.Status, f.dev.logs(t, second.ID, "?level=warn,error"))
	}
	f.checkCompleted(t, second.ID)
	over, _ := f.report(t, victim, false, f0, f1)
	if over > 0 {
		t.Errorf("the queued task's apply overlapped the cancelled one's for %s", over)
	}
	t.Logf("cancelled %s after the cancel request", cancelledAt.Sub(f0).Round(100*time.Millisecond))
}
