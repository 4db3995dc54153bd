// Package pgtest gives tests a PostgreSQL server: a throwaway cluster started
// from the local PostgreSQL server binaries (one per test binary, shared by
// its tests), or the server named by TERRATASK_TEST_POSTGRES_DSN. Every call
// of NewDatabase creates a fresh, empty database on it, so tests never see
// each other's data.
//
// A package that uses the shared cluster stops it after its tests with
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Without that, the cluster still dies with the test binary (the postmaster
// gets SIGQUIT when its parent exits, on Linux) but its data directory is
// left in the temporary directory.
//
// The throwaway cluster trades durability for speed (fsync, synchronous
// commit and full page writes are off) and listens on a free loopback port
// with its Unix socket inside its data directory's parent. Its default
// collation is ICU's en-US where the binaries support it, as on a typical
// production server, so a query that relies on bytewise ordering without
// COLLATE "C" fails its tests here rather than in production.
//
// When no server binaries are found and no DSN is set, tests that need the
// server are skipped, or fail when the CI environment variable is set.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables the package reads.
const (
	// EnvDSN names a PostgreSQL server to use instead of starting one. The
	// DSN (URL or key=value form) must connect as a role that may create
	// databases; NewDatabase creates and later drops databases named t_*.
	EnvDSN = "TERRATASK_TEST_POSTGRES_DSN"
	// EnvBinDir names the directory of initdb and postgres, overriding the
	// search (DefaultBinDir, then other /usr/lib/postgresql/*/bin, then PATH).
	EnvBinDir = "TERRATASK_TEST_POSTGRES_BIN"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the server
// binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// installHint tells how to get what the tests need.
const installHint = "install the PostgreSQL 15 server (Debian/Ubuntu: apt-get install postgresql-15; " +
	"binaries in " + DefaultBinDir + "), point " + EnvBinDir + " at a directory holding initdb and postgres, " +
	"or set " + EnvDSN + " to a server the tests may create databases on"

// Cluster is a PostgreSQL server tests create databases on.
type Cluster struct {
	// adminDSN connects to the maintenance database, where databases are
	// created and dropped.
	adminDSN string
	// external is true when the server comes from EnvDSN: its databases are
	// dropped after each test, and Stop leaves the server alone.
	external bool

	// The local cluster's process and files; zero for an external server.
	root    string // temporary directory: data/, socket, log
	logPath string
	proc    *os.Process
	exited  chan struct{} // closed when the postmaster has exited
	waitErr error         // the postmaster's exit status, after exited
}

// unavailableError reports that no server can be started here.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason + "; " + installHint }

var shared struct {
	once    sync.Once
	mu      sync.Mutex
	cluster *Cluster
	err     error
}

// Start returns the test binary's shared server, starting it on first use.
// When no server can be had it skips tb, or fails it when the CI environment
// variable is set, saying what to install.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	shared.once.Do(func() {
		c, err := start()
		shared.mu.Lock()
		shared.cluster, shared.err = c, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	c, err := shared.cluster, shared.err
	shared.mu.Unlock()
	if err != nil {
		var un *unavailableError
		if errors.As(err, &un) && os.Getenv("CI") == "" {
			tb.Skipf("pgtest: %v", err)
		}
		tb.Fatalf("pgtest: %v", err)
	}
	if c == nil {
		tb.Fatal("pgtest: the shared cluster was stopped")
	}
	return c
}

// NewDatabase is Start(tb).NewDatabase(tb).
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return Start(tb).NewDatabase(tb)
}

// Main runs m's tests and then stops the shared cluster, if one was started.
// Call it from TestMain; the test binary exits with the tests' status.
func Main(m *testing.M) {
	defer Stop()
	m.Run()
}

// Stop stops the shared cluster and removes its files. Later calls of Start
// fail. Stop is safe to call when no cluster was started.
func Stop() {
	shared.once.Do(func() {}) // no cluster may start after this
	shared.mu.Lock()
	c := shared.cluster
	shared.cluster = nil
	shared.mu.Unlock()
	if c != nil {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
}

// AdminDSN returns the DSN of the server's maintenance database.
func (c *Cluster) AdminDSN() string { return c.adminDSN }

// NewDatabase creates an empty database with a random name and returns its
// DSN. On an external server (EnvDSN) the database is dropped when tb ends;
// a local cluster's databases go with the cluster.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.admin(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	if c.external {
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.admin(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
				tb.Errorf("pgtest: drop database %s: %v", name, err)
			}
		})
	}
	dsn, err := withDatabase(c.adminDSN, name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// admin runs a statement on the maintenance database.
func (c *Cluster) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn with its database replaced by name. dsn is a
// postgres:// URL or a key=value string.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In key=value form a later key overrides an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

// start returns the external server of EnvDSN or starts a local cluster.
func start() (*Cluster, error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		c := &Cluster{adminDSN: dsn, external: true}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.admin(ctx, `SELECT 1`); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvDSN, err)
		}
		return c, nil
	}
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	return startLocal(bin)
}

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
