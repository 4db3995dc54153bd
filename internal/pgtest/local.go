package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// findBinDir returns a directory holding initdb and postgres.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if !has(dir) {
			return "", &unavailableError{fmt.Sprintf("%s=%s holds no initdb and postgres", EnvBinDir, dir)}
		}
		return dir, nil
	}
	if has(DefaultBinDir) {
		return DefaultBinDir, nil
	}
	// Another major version of Debian's packages, newest first.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", &unavailableError{"no PostgreSQL server binaries (initdb, postgres) found"}
}

// majorOf returns the version directory's number of /usr/lib/postgresql/N/bin.
func majorOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// serverUser is the account the server runs as: the current one, or the
// postgres system user when running as root (initdb and postgres refuse to
// run as root).
type serverUser struct {
	switchTo bool
	uid, gid int
}

func currentServerUser() (serverUser, error) {
	if os.Geteuid() != 0 {
		return serverUser{}, nil
	}
	if !canSwitchUser {
		return serverUser{}, &unavailableError{"running as root, and the server cannot be started as another user on " + runtime.GOOS}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return serverUser{}, &unavailableError{"running as root and there is no postgres system user to run the server as"}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return serverUser{}, fmt.Errorf("postgres user: uid %q gid %q", u.Uid, u.Gid)
	}
	return serverUser{switchTo: true, uid: uid, gid: gid}, nil
}

// command returns a command that runs as su.
func (su serverUser) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "TZ=UTC")
	cmd.SysProcAttr = sysProcAttr(su, false)
	if su.switchTo {
		cmd.Env = append(cmd.Env, "HOME="+os.TempDir(), "USER=postgres", "LOGNAME=postgres")
	}
	return cmd
}

// startLocal initialises a cluster in a new temporary directory and starts it.
func startLocal(bin string) (c *Cluster, err error) {
	su, err := currentServerUser()
	if err != nil {
		return nil, err
	}
	// Not testing.TB.TempDir: the cluster outlives the first test, and the
	// postgres user must be able to reach the directory.
	removeStale()
	root, err := os.MkdirTemp("", rootPrefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(root)
		}
	}()
	if err := os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if su.switchTo {
		if err := os.Chown(root, su.uid, su.gid); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", root, err)
		}
	}
	data := filepath.Join(root, "data")

	// ICU en-US as the default collation where the build has ICU; else the
	// C.UTF-8 libc locale.
	base := []string{"-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"}
	var initErr error
	for _, extra := range [][]string{{"--locale-provider=icu", "--icu-locale=en-US"}, nil} {
		out, err := su.command(filepath.Join(bin, "initdb"), append(base, extra...)...).CombinedOutput()
		if err == nil {
			initErr = nil
			break
		}
		initErr = fmt.Errorf("initdb: %v\n%s", err, out)
		os.RemoveAll(data)
	}
	if initErr != nil {
		return nil, initErr
	}

	c = &Cluster{root: root, logPath: filepath.Join(root, "postgres.log")}
	// A port picked free may be taken before the server binds it: retry.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		err = c.startServer(bin, su, data, port)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 4 {
			return nil, err
		}
	}
}

// errPortTaken reports that the server could not bind its port.
var errPortTaken = errors.New("port taken")

// A cluster's files are in a directory named rootPrefix* in the temporary
// directory, with the PID of the test binary that made it in ownerFile.
const (
	rootPrefix = "terratask-pgtest-"
	ownerFile  = "owner.pid"
)

// removeStale removes the files of clusters whose test binary died without
// stopping them (the cluster itself died with it).
func removeStale() {
	roots, _ := filepath.Glob(filepath.Join(os.TempDir(), rootPrefix+"*"))
	for _, root := range roots {
		b, err := os.ReadFile(filepath.Join(root, ownerFile))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(root)
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts the postmaster on port and waits until it accepts
// connections.
func (c *Cluster) startServer(bin string, su serverUser, data string, port int) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := su.command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.root,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
		"-c", "timezone=UTC",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(su, true)

	// The parent-death signal fires when the thread that started the child
	// exits, so start it from a locked thread that lives as long as it does.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.proc, c.exited = cmd.Process, exited
	c.adminDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.admin(ctx, `SELECT 1`)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log := tail(c.logPath)
			if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
				return fmt.Errorf("%w: port %d", errPortTaken, port)
			}
			return fmt.Errorf("postgres exited (%v) before accepting connections; log %s:\n%s", c.waitErr, c.logPath, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = c.proc.Kill()
			<-exited
			return fmt.Errorf("postgres did not accept connections within a minute: %v; log:\n%s", err, tail(c.logPath))
		}
	}
}

// tail returns the end of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop shuts a local cluster down (fast shutdown, then immediate, then
// SIGKILL) and removes its files. It does nothing for an external server.
func (c *Cluster) Stop() error {
	if c.external || c.proc == nil {
		return nil
	}
	for _, step := range []struct {
		sig  os.Signal
		wait time.Duration
	}{{syscall.SIGINT, 15 * time.Second}, {syscall.SIGQUIT, 5 * time.Second}, {os.Kill, 5 * time.Second}} {
		_ = c.proc.Signal(step.sig)
		select {
		case <-c.exited:
			return os.RemoveAll(c.root)
		case <-time.After(step.wait):
		}
	}
	return fmt.Errorf("postgres (pid %d) did not exit; left %s", c.proc.Pid, c.root)
}
