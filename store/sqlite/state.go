package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/terratask/terratask/store"
)

// stateColumns is the column list of state versions without data.
const stateColumns = `org, workspace, version, serial, lineage, md5, size, task_id, created_at`

func scanStateVersion(row interface{ Scan(...any) error }, withData bool) (store.StateVersion, error) {
	var v store.StateVersion
	var created int64
	dest := []any{&v.Org, &v.Workspace, &v.Version, &v.Serial, &v.Lineage, &v.MD5, &v.Size, &v.TaskID, &created}
	if withData {
		dest = append(dest, &v.Data)
	}
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return v, store.ErrNotFound
		}
		return v, err
	}
	v.CreatedAt = goTime(created)
	return v, nil
}

// heldLock reads the workspace's lock inside tx; nil when unlocked.
func heldLock(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, org, ws string) (*store.StateLock, error) {
	l := store.StateLock{Org: org, Workspace: ws}
	var created, renewed int64
	err := q.QueryRowContext(ctx, `SELECT lock_id, task_id, fence, info, created_at, renewed_at FROM state_locks WHERE org = ? AND workspace = ?`, org, ws).
		Scan(&l.ID, &l.TaskID, &l.Fence, &l.Info, &created, &renewed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.CreatedAt, l.RenewedAt = goTime(created), goTime(renewed)
	return &l, nil
}

// PutState implements store.StateStore in one write transaction.
func (s *Store) PutState(ctx context.Context, v store.StateVersion, lockID string) (store.StateVersion, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		held, err := heldLock(ctx, tx, v.Org, v.Workspace)
		if err != nil {
			return err
		}
		if err := store.CheckLock(held, lockID); err != nil {
			return err
		}
		latest, err := scanStateVersion(tx.QueryRowContext(ctx, `SELECT `+stateColumns+` FROM state_versions
			WHERE org = ? AND workspace = ? ORDER BY version DESC LIMIT 1`, v.Org, v.Workspace), false)
		switch {
		case err == nil && latest.MD5 == v.MD5:
			v = latest
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		v.Version = latest.Version + 1
		v.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
		_, err = tx.ExecContext(ctx, `INSERT INTO state_versions (`+stateColumns+`, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.Org, v.Workspace, v.Version, v.Serial, v.Lineage, v.MD5, v.Size, v.TaskID, dbTime(v.CreatedAt), v.Data)
		v.Data = nil
		return err
	})
	if err != nil {
		return store.StateVersion{}, stateErr("put state", err)
	}
	return v, nil
}

// GetState implements store.StateStore.
func (s *Store) GetState(ctx context.Context, org, workspace string) (store.StateVersion, error) {
	v, err := scanStateVersion(s.r.QueryRowContext(ctx, `SELECT `+stateColumns+`, data FROM state_versions
		WHERE org = ? AND workspace = ? ORDER BY version DESC LIMIT 1`, org, workspace), true)
	return v, stateErr("get state", err)
}

// GetStateVersion implements store.StateStore.
func (s *Store) GetStateVersion(ctx context.Context, org, workspace string, version int64) (store.StateVersion, error) {
	v, err := scanStateVersion(s.r.QueryRowContext(ctx, `SELECT `+stateColumns+`, data FROM state_versions
		WHERE org = ? AND workspace = ? AND version = ?`, org, workspace, version), true)
	return v, stateErr("get state version", err)
}

// ListStateVersions implements store.StateStore.
func (s *Store) ListStateVersions(ctx context.Context, org, workspace string, limit, offset int) ([]store.StateVersion, int, error) {
	if limit <= 0 {
		return nil, 0, fmt.Errorf("sqlite store: list state versions: limit must be positive, got %d", limit)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+stateColumns+`, (SELECT count(*) FROM state_versions WHERE org = ?1 AND workspace = ?2)
		FROM state_versions WHERE org = ?1 AND workspace = ?2 ORDER BY version DESC LIMIT ?3 OFFSET ?4`, org, workspace, limit, max(offset, 0))
	if err != nil {
		return nil, 0, stateErr("list state versions", err)
	}
	defer rows.Close()
	var out []store.StateVersion
	var total int
	for rows.Next() {
		var v store.StateVersion
		var created int64
		if err := rows.Scan(&v.Org, &v.Workspace, &v.Version, &v.Serial, &v.Lineage, &v.MD5, &v.Size, &v.TaskID, &created, &total); err != nil {
			return nil, 0, stateErr("list state versions", err)
		}
		v.CreatedAt = goTime(created)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, stateErr("list state versions", err)
	}
	if out == nil {
		// A page past the end still reports the total.
		var n sql.NullInt64
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM state_versions WHERE org = ? AND workspace = ?`, org, workspace).Scan(&n); err != nil {
			return nil, 0, stateErr("list state versions", err)
		}
		total = int(n.Int64)
	}
	return out, total, nil
}

// PruneStateVersions implements store.StateStore.
func (s *Store) PruneStateVersions(ctx context.Context, org, workspace string, keep int) (int, error) {
	if keep <= 0 {
		return 0, fmt.Errorf("sqlite store: prune state versions: keep must be positive, got %d", keep)
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM state_versions WHERE org = ?1 AND workspace = ?2
			AND version <= (SELECT max(version) FROM state_versions WHERE org = ?1 AND workspace = ?2) - ?3`, org, workspace, keep)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), stateErr("prune state versions", err)
}

// LockState implements store.StateStore.
func (s *Store) LockState(ctx context.Context, l store.StateLock) error {
	return s.lockState(ctx, l, false)
}

// RenewStateLock implements store.StateStore.
func (s *Store) RenewStateLock(ctx context.Context, l store.StateLock) error {
	return s.lockState(ctx, l, true)
}

// lockState takes or renews l (see store.CheckRelock) in one transaction.
func (s *Store) lockState(ctx context.Context, l store.StateLock, renew bool) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		held, err := heldLock(ctx, tx, l.Org, l.Workspace)
		if err != nil {
			return err
		}
		verdict, err := store.CheckRelock(held, l, renew)
		now := dbTime(time.Now())
		switch {
		case err != nil:
			return err
		case verdict == store.RelockRenew:
			_, err = tx.ExecContext(ctx, `UPDATE state_locks SET renewed_at = ? WHERE org = ? AND workspace = ?`, now, l.Org, l.Workspace)
		case verdict == store.RelockTake:
			_, err = tx.ExecContext(ctx, `INSERT INTO state_locks (org, workspace, lock_id, task_id, fence, info, created_at, renewed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				l.Org, l.Workspace, l.ID, l.TaskID, l.Fence, store.NonNil(l.Info), now, now)
		}
		return err
	})
	if renew {
		return stateErr("renew state lock", err)
	}
	return stateErr("lock state", err)
}

// UnlockState implements store.StateStore.
func (s *Store) UnlockState(ctx context.Context, org, workspace, id string) (store.StateLock, error) {
	var released store.StateLock
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		held, err := heldLock(ctx, tx, org, workspace)
		if err != nil {
			return err
		}
		del, err := store.CheckUnlock(held, id)
		if err != nil || !del {
			return err
		}
		released = *held
		_, err = tx.ExecContext(ctx, `DELETE FROM state_locks WHERE org = ? AND workspace = ?`, org, workspace)
		return err
	})
	if err != nil {
		return store.StateLock{}, stateErr("unlock state", err)
	}
	return released, nil
}

// GetStateLock implements store.StateStore.
func (s *Store) GetStateLock(ctx context.Context, org, workspace string) (store.StateLock, error) {
	held, err := heldLock(ctx, s.r, org, workspace)
	if err != nil {
		return store.StateLock{}, stateErr("get state lock", err)
	}
	if held == nil {
		return store.StateLock{}, store.ErrNotFound
	}
	return *held, nil
}

// stateErr wraps err for a state operation (see store.StateErr).
func stateErr(op string, err error) error { return store.StateErr("sqlite store: "+op, err) }
