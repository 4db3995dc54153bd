// Package watchdog keeps a runner's sandboxed engine commands within their
// lease, from a process of its own.
//
// A step attempt may run Terraform only while Temporal still counts the
// attempt as alive: once its heartbeat timeout passes, Temporal hands the
// work to another attempt (on another host), and the state server lets that
// attempt take the workspace's lock once the lock's lease has lapsed. The
// runner's Go process renews the attempt's lease with every heartbeat that
// reaches Temporal (and every state lock renewal that reaches the server),
// and tells the watchdog the new deadline. A runner that stalls (SIGSTOP, a
// stuck GC, a host cut off from Temporal) renews nothing, so it cannot
// enforce anything either: the watchdog, a separate process started by the
// runner, kills the attempt's sandboxes when the deadline passes, before
// Temporal or the state server give the work away.
//
// The watchdog is one small process per runner (`terratask watchdog`, the
// runner's own binary started once, reading commands on its stdin), not one
// per command: a process start per engine command is what the sandbox
// already costs, and the terratask binary takes ~100 ms to start. It runs
// outside every sandbox, so task code can neither signal nor trace it (it is
// a different process tree in another PID namespace), and outside the
// runner, so a frozen runner does not freeze it. When the runner dies its
// stdin ends: it kills every sandbox it watches and exits (the sandboxes die
// with the runner anyway, through bubblewrap's --die-with-parent). When the
// whole host freezes, the watchdog freezes with it; on waking, its timers
// are already due, so it kills the expired sandboxes at once, before it
// reads anything else: "kill first, ask after". A freeze shorter than the
// leases kills nothing: the watchdog sees that it was frozen itself, so
// the runner's silence meanwhile is no sign of a stalled runner.
//
// Killing a sandbox means SIGKILL to its PID 1 (sandbox.Kill): the kernel
// then kills every process of its PID namespace, provisioners and orphans
// included. The watchdog also creates the file "expired" in the step's
// sandbox dir, which the sandbox wrapper checks before it starts a command,
// and goes on killing what appears in the dir until the step disarms it, so
// a command started in the instant of the expiry does not survive either.
//
// Besides each step's lease, the runner itself must stay alive: its Client
// writes "alive" every AliveEvery, and when nothing has come for StallAfter
// the watchdog kills every sandbox it watches. A stalled runner can neither
// pass its Terraform's state writes on (its state proxy is stalled too) nor
// its logs, so what Terraform does meanwhile is work no state records; this
// bounds it to StallAfter, where the lease alone would allow the heartbeat
// timeout.
//
// The protocol is one line per command on the watchdog's stdin, deadlines in
// nanoseconds of CLOCK_MONOTONIC (Now), which both processes read alike:
//
//	arm ID DEADLINE DIR     watch the sandboxes in DIR (a quoted Go string)
//	renew ID DEADLINE       move ID's deadline
//	disarm ID               stop watching ID
//	alive                   the runner is alive
package watchdog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/terratask/terratask/internal/sandbox"
)

// Command is the terratask subcommand that runs the watchdog (hidden).
const Command = "watchdog"

// ExpiredFile is the name of the file the watchdog creates in a step's
// sandbox dir when its lease expired.
const ExpiredFile = sandbox.ExpiredFile

// StallAfter is how long the runner may say nothing before the watchdog
// kills every sandbox it watches; AliveEvery is how often the Client says
// "alive".
const (
	StallAfter = 4 * time.Second
	AliveEvery = 500 * time.Millisecond
)

// tick is the longest the watchdog's loop sleeps, and selfFrozen how late
// a wake-up must be for the watchdog to conclude it was frozen itself.
const (
	tick       = time.Second
	selfFrozen = 3 * time.Second
)

// recheck is how often an expired step's dir is searched again for
// sandboxes that started as it expired.
const recheck = 100 * time.Millisecond

// Now is the current CLOCK_MONOTONIC reading in nanoseconds: the clock of
// deadlines.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // cannot fail on Linux
	}
	return ts.Nano()
}

// Main runs the watchdog on stdin until it ends; the process's exit code.
func Main() int {
	// SIGINT and SIGTERM go to the runner's process group: the watchdog
	// stops only when the runner closes its stdin (or dies).
	ignoreSignals()
	if err := Serve(os.Stdin, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "terratask watchdog:", err)
		return 1
	}
	return 0
}

// entry is one watched step.
type entry struct {
	dir      string
	deadline int64
	expired  bool
}

// Serve reads commands from in until it ends, enforcing deadlines; then it
// kills what it still watches. It reports on log what it kills.
func Serve(in io.Reader, log io.Writer) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
		close(lines)
	}()
	w := &state{entries: map[string]*entry{}, log: log, alive: Now()}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Kill first: whatever is due (after a freeze, everything) goes
		// before the next command is read.
		now := Now()
		if w.looked != 0 && now-w.looked > int64(selfFrozen) {
			// The watchdog itself was stopped (the whole host froze):
			// the runner's silence meanwhile is no sign of a stalled
			// runner. Leases still end now; the runner gets StallAfter
			// from now to speak.
			w.alive = max(w.alive, now)
		}
		w.looked = now
		next := w.enforce(now)
		d := tick
		if next > 0 {
			d = min(d, time.Duration(next-Now()))
		}
		timer.Reset(max(d, 0))
		select {
		case l, ok := <-lines:
			if !ok {
				w.killAll("the runner is gone")
				return <-readErr
			}
			if err := w.apply(l); err != nil {
				fmt.Fprintln(log, "terratask watchdog:", err)
			}
		case <-timer.C:
		}
	}
}

type state struct {
	entries map[string]*entry
	log     io.Writer
	// alive is when the runner last spoke; looked when the loop last ran.
	alive, looked int64
}

// apply runs one command line.
func (w *state) apply(line string) error {
	w.alive = Now()
	f := strings.SplitN(line, " ", 4)
	switch {
	case line == "alive":
	case len(f) == 4 && f[0] == "arm":
		deadline, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("bad deadline in %q", line)
		}
		dir, err := strconv.Unquote(f[3])
		if err != nil || !filepath.IsAbs(dir) {
			return fmt.Errorf("bad dir in %q", line)
		}
		w.entries[f[1]] = &entry{dir: dir, deadline: deadline}
	case len(f) == 3 && f[0] == "renew":
		deadline, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("bad deadline in %q", line)
		}
		// An expired lease stays expired: the attempt was given up.
		if e := w.entries[f[1]]; e != nil && !e.expired && deadline > e.deadline {
			e.deadline = deadline
		}
	case len(f) == 2 && f[0] == "disarm":
		delete(w.entries, f[1])
	default:
		return fmt.Errorf("unknown command %q", line)
	}
	return nil
}

// enforce kills the sandboxes of every entry whose deadline has passed and
// returns the next time it must look (0: nothing to watch).
func (w *state) enforce(now int64) int64 {
	var next int64
	stalled := now-w.alive >= int64(StallAfter)
	for id, e := range w.entries {
		if !e.expired && (now >= e.deadline || stalled) {
			e.expired = true
			if err := markExpired(e.dir); err != nil {
				fmt.Fprintf(w.log, "terratask watchdog: %s: %v\n", id, err)
			}
			n := sandbox.Kill(e.dir)
			if now >= e.deadline {
				late := time.Duration(now - e.deadline).Round(time.Millisecond)
				fmt.Fprintf(w.log, "terratask watchdog: lease of step %s expired (%s ago): killed %d sandbox(es)\n", id, late, n)
			} else {
				quiet := time.Duration(now - w.alive).Round(time.Millisecond)
				fmt.Fprintf(w.log, "terratask watchdog: the runner said nothing for %s: killed %d sandbox(es) of step %s\n", quiet, n, id)
			}
		} else if e.expired {
			if n := sandbox.Kill(e.dir); n > 0 {
				fmt.Fprintf(w.log, "terratask watchdog: lease of step %s expired: killed %d more sandbox(es)\n", id, n)
			}
		}
		at := min(e.deadline, w.alive+int64(StallAfter))
		if e.expired {
			at = now + int64(recheck)
		}
		if next == 0 || at < next {
			next = at
		}
	}
	return next
}

func (w *state) killAll(why string) {
	for id, e := range w.entries {
		_ = markExpired(e.dir)
		if n := sandbox.Kill(e.dir); n > 0 {
			fmt.Fprintf(w.log, "terratask watchdog: %s: killed %d sandbox(es) of step %s\n", why, n, id)
		}
	}
}

func markExpired(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, ExpiredFile), os.O_CREATE|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the step is over: its dir is gone
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Client is the runner's end of a watchdog process.
type Client struct {
	mu   sync.Mutex
	w    io.WriteCloser
	done chan struct{}
	err  error
	pid  int
}

// send writes one command line; an error means the watchdog is gone.
func (c *Client) send(line string) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if _, err := io.WriteString(c.w, line+"\n"); err != nil {
		c.err = fmt.Errorf("the watchdog is gone: %w", err)
		return c.err
	}
	return nil
}

// Arm watches the sandboxes in dir under id until deadline (Now's clock).
func (c *Client) Arm(id, dir string, deadline int64) error {
	if strings.ContainsAny(id, " \n") {
		return fmt.Errorf("watchdog: bad id %q", id)
	}
	return c.send(fmt.Sprintf("arm %s %d %s", id, deadline, strconv.Quote(dir)))
}

// Renew moves id's deadline later (never earlier, never after it expired).
func (c *Client) Renew(id string, deadline int64) error {
	return c.send(fmt.Sprintf("renew %s %d", id, deadline))
}

// Disarm stops watching id.
func (c *Client) Disarm(id string) error {
	return c.send("disarm " + id)
}

// Close ends the watchdog: it kills what it still watches and exits.
func (c *Client) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = errors.New("the watchdog is closed")
	}
	err := c.w.Close()
	c.mu.Unlock()
	<-c.done
	return err
}

// Alive reports whether the watchdog still runs.
func (c *Client) Alive() bool {
	if c == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}
