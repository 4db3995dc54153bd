// Package sqlite is the embedded implementation of store.Store: one SQLite
// file, through the pure-Go driver modernc.org/sqlite.
//
// The database runs in WAL mode, so readers never block the writer nor the
// writer the readers. SQLite allows one writer at a time; the Store funnels
// every write through a pool of exactly one connection whose transactions
// BEGIN IMMEDIATE, so writers of one process queue in Go instead of failing
// with SQLITE_BUSY, and busy_timeout covers writers of other processes.
// Reads use a separate pool of query-only connections.
//
// Lists read a page's rowids from a composite (filter, sort, id) index and
// take their total from task_counts, per-(org, status, agent, runner) counts
// kept by triggers, so a page costs about the same at 100,000 tasks as at 100
// (except for deep offsets: SQLite still walks the index entries an offset
// skips). Statements are prepared once per connection and cached.
//
// Listen tells followers about this Store's own log appends and events at
// once, and about those of other processes writing the same file (a runner
// sharing a server's store) by one poll every PollInterval.
//
// Timestamps are stored as integer microseconds since the Unix epoch and read
// back in UTC; finer precision is truncated.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/terratask/terratask/store"
)

// BusyTimeoutMillis is how long a connection waits for a lock held by another
// connection (another process's writer, or a checkpoint) before failing.
const BusyTimeoutMillis = 5000

// Store is a store.Store backed by one SQLite file. It is safe for concurrent
// use.
type Store struct {
	w   *sql.DB // writes: one connection, BEGIN IMMEDIATE
	r   *sql.DB // reads: query-only connections
	wst *stmtCache
	rst *stmtCache
	// feed tells Listen callers about new log lines and events.
	feed *changeFeed
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed) the SQLite database at path and applies
// pending schema migrations. path is a file path; the directory must exist.
// In-memory databases are not supported, since the read and write pools must
// share the database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite store: path must be a file path, got %q", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}

	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	if _, err := migrate(ctx, w, migrationFS, "migrations"); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store: %s: %w", abs, err)
	}

	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", abs, err)
	}
	return &Store{w: w, r: r, wst: newStmtCache(w), rst: newStmtCache(r), feed: newChangeFeed()}, nil
}

// dsn is the driver's data source name for the file at abs. The _pragma
// parameters run on every new connection of the pool.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16000)") // 16 MB per connection
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		// A deferred transaction that later writes can fail with SQLITE_BUSY
		// without waiting; an immediate one takes the write lock up front and
		// so honours busy_timeout.
		q.Set("_txlock", "immediate")
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letter: file:/C:/...
	}
	return "file:" + (&url.URL{Path: p}).EscapedPath() + "?" + q.Encode()
}

// Ping checks both pools reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	return nil
}

// Close closes both pools. The last connection to close checkpoints the WAL
// into the database file.
//
// The Store deliberately never runs ANALYZE (nor PRAGMA optimize, which may
// run it): without statistics SQLite's planner picks the (filter, sort)
// indexes the schema was designed for, which TestQueryPlans pins.
func (s *Store) Close() error {
	s.feed.close()
	errs := []error{s.rst.close(), s.wst.close()}
	return errors.Join(append(errs, s.r.Close(), s.w.Close())...)
}

// inTx runs fn in a write transaction and commits it if fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
