package sqlite

import (
	"context"
	"database/sql"
	"strings"
)

// multiInsert is an INSERT whose VALUES list can hold any number of rows.
//
// Batched inserts cut their rows greedily into chunks of the sizes, largest
// first (100 rows with sizes 32, 8, 1: 3 x 32 + 4 x 1), so a handful of
// prepared statement shapes serve any batch size with few statements. The
// driver matches each bound parameter to its argument by a linear search,
// so binding costs grow with the square of a statement's parameter count:
// keep the largest chunk to about 250 parameters.
type multiInsert struct {
	head  string // "INSERT INTO t (a, b)"
	width int    // columns per row
	tail  string // " ON CONFLICT ... DO NOTHING"
	sizes []int  // rows per statement, largest first, ending with 1
}

// sql returns the statement for n rows.
func (m multiInsert) sql(n int) string {
	row := "(?" + strings.Repeat(", ?", m.width-1) + ")"
	return m.head + " VALUES " + row + strings.Repeat(", "+row, n-1) + m.tail
}

// insertBatch inserts the rows of args (m.width values per row) in order, in
// one write transaction.
func (s *Store) insertBatch(ctx context.Context, m multiInsert, args []any) error {
	b, err := s.prepareBatch(ctx, m, args)
	if err != nil {
		return err
	}
	defer b.release()
	return s.inTx(ctx, func(tx *sql.Tx) error { return b.exec(ctx, tx) })
}

// batch is a multiInsert's statements for one set of rows, prepared before
// the write transaction that runs them.
type batch struct {
	args     []any
	width    int
	chunks   []chunk
	releases []func()
}

type chunk struct {
	stmt        *sql.Stmt
	size, count int // count consecutive statements of size rows
}

// prepareBatch fetches the statements of m for args. It must be called
// before the transaction takes the single write connection (see stmtCache).
func (s *Store) prepareBatch(ctx context.Context, m multiInsert, args []any) (*batch, error) {
	b := &batch{args: args, width: m.width}
	rest := len(args) / m.width
	for _, size := range m.sizes {
		if rest < size {
			continue
		}
		st, release, err := s.wst.get(ctx, m.sql(size))
		if err != nil {
			b.release()
			return nil, err
		}
		b.releases = append(b.releases, release)
		b.chunks = append(b.chunks, chunk{st, size, rest / size})
		rest %= size
	}
	return b, nil
}

func (b *batch) release() {
	for _, r := range b.releases {
		r()
	}
}

// exec runs the batch in tx.
func (b *batch) exec(ctx context.Context, tx *sql.Tx) error {
	off := 0
	for _, c := range b.chunks {
		stmt := tx.StmtContext(ctx, c.stmt)
		for range c.count {
			end := off + c.size*b.width
			if _, err := stmt.ExecContext(ctx, b.args[off:end]...); err != nil {
				stmt.Close()
				return err
			}
			off = end
		}
		stmt.Close()
	}
	return nil
}
