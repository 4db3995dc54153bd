package watchdog

import (
	"fmt"
	"io"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// ignoreSignals makes the watchdog deaf to the signals a terminal or a
// service manager sends the runner's process group: it ends with its stdin.
func ignoreSignals() {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
}

// New starts a watchdog: the binary at exe run with args (for terratask,
// its own executable and Command), its output to log. Its stdin is a pipe
// only this process holds (close-on-exec), so the watchdog reads EOF when
// this process exits, however it dies, and then kills what it watches.
func New(exe string, args []string, log io.Writer) (*Client, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = log, log
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the watchdog: %w", err)
	}
	c := &Client{w: w, done: make(chan struct{}), pid: cmd.Process.Pid}
	go c.keepAlive()
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		if c.err == nil {
			c.err = fmt.Errorf("the watchdog exited: %v", err)
		}
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// keepAlive says "alive" every AliveEvery until the watchdog is gone.
func (c *Client) keepAlive() {
	t := time.NewTicker(AliveEvery)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.send("alive") != nil {
				return
			}
		}
	}
}
