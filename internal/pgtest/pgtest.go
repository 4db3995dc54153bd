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
	"net/url"
	"os"
	"strings"
	"sync"
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
