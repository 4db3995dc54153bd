package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxCachedStmts bounds a stmtCache. The Store builds a bounded set of query
// shapes, so the bound is only a safety net.
const maxCachedStmts = 512

// stmtCache keeps the prepared statements of one pool by SQL text. Parsing
// and planning a statement costs more than running a simple one, so every
// query of the Store goes through it. database/sql prepares a cached
// statement once per connection and reuses it, also inside transactions
// (Tx.StmtContext).
//
// get may need a connection of the pool to prepare on, so it must not be
// called while the caller holds a transaction of the same pool: the write
// pool has a single connection, which would deadlock. Get statements first,
// then begin the transaction and bind them with Tx.StmtContext.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query and a release function to
// call when done with it (which closes it if it could not be cached).
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, func(), error) {
	c.mu.Lock()
	if st, ok := c.m[query]; ok {
		c.mu.Unlock()
		return st, func() {}, nil
	}
	if c.closed {
		c.mu.Unlock()
		return nil, nil, errors.New("store is closed")
	}
	c.mu.Unlock()

	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok { // prepared concurrently
		st.Close()
		return prev, func() {}, nil
	}
	if c.closed || len(c.m) >= maxCachedStmts {
		return st, func() { st.Close() }, nil
	}
	c.m[query] = st
	return st, func() {}, nil
}

// close closes every cached statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// exec runs a statement on the pool.
func (c *stmtCache) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, release, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	defer release()
	return st.ExecContext(ctx, args...)
}

// queryRow runs a single-row query on the pool and passes its row to scan.
func (c *stmtCache) queryRow(ctx context.Context, query string, args []any, scan func(*sql.Row) error) error {
	st, release, err := c.get(ctx, query)
	if err != nil {
		return err
	}
	defer release()
	return scan(st.QueryRowContext(ctx, args...))
}
