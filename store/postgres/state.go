package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
)

// stateLockClass is the first key of the advisory locks that serialise the
// state operations of a workspace (the second is the hash of org and
// workspace), across every replica sharing the database.
const stateLockClass int32 = 0x7473_7461 // "tsta"

// stateColumns is the column list of state versions without data.
const stateColumns = `org, workspace, version, serial, lineage, md5, size, task_id, created_at`

func scanStateVersion(row pgx.Row, withData bool) (store.StateVersion, error) {
	var v store.StateVersion
	dest := []any{&v.Org, &v.Workspace, &v.Version, &v.Serial, &v.Lineage, &v.MD5, &v.Size, &v.TaskID, &v.CreatedAt}
	if withData {
		dest = append(dest, &v.Data)
	}
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return v, store.ErrNotFound
		}
		return v, err
	}
	v.CreatedAt = v.CreatedAt.UTC()
	return v, nil
}

// inStateTx runs fn in a transaction holding the workspace's advisory lock.
func (s *Store) inStateTx(ctx context.Context, org, ws string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, stateLockClass, org+"\x1f"+ws); err != nil {
			return err
		}
		return fn(tx)
	})
}

// heldLock reads the workspace's lock; nil when unlocked.
func heldLock(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, org, ws string) (*store.StateLock, error) {
	l := store.StateLock{Org: org, Workspace: ws}
	err := q.QueryRow(ctx, `SELECT lock_id, task_id, fence, info, created_at, renewed_at FROM state_locks WHERE org = $1 AND workspace = $2`, txt(org), txt(ws)).
		Scan(&l.ID, &l.TaskID, &l.Fence, &l.Info, &l.CreatedAt, &l.RenewedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.CreatedAt, l.RenewedAt = l.CreatedAt.UTC(), l.RenewedAt.UTC()
	return &l, nil
}

// PutState implements store.StateStore.
func (s *Store) PutState(ctx context.Context, v store.StateVersion, lockID string) (store.StateVersion, error) {
	v.Org, v.Workspace = txt(v.Org), txt(v.Workspace)
	err := s.inStateTx(ctx, v.Org, v.Workspace, func(tx pgx.Tx) error {
		held, err := heldLock(ctx, tx, v.Org, v.Workspace)
		if err != nil {
			return err
		}
		if err := store.CheckLock(held, txt(lockID)); err != nil {
			return err
		}
		latest, err := scanStateVersion(tx.QueryRow(ctx, `SELECT `+stateColumns+` FROM state_versions
			WHERE org = $1 AND workspace = $2 ORDER BY version DESC LIMIT 1`, v.Org, v.Workspace), false)
		switch {
		case err == nil && latest.MD5 == v.MD5:
			v = latest
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		v.Version = latest.Version + 1
		v.CreatedAt = dbTime(time.Now().UTC())
		_, err = tx.Exec(ctx, `INSERT INTO state_versions (`+stateColumns+`, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			v.Org, v.Workspace, v.Version, v.Serial, txt(v.Lineage), txt(v.MD5), v.Size, txt(v.TaskID), v.CreatedAt, store.NonNil(v.Data))
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
	v, err := scanStateVersion(s.pool.QueryRow(ctx, `SELECT `+stateColumns+`, data FROM state_versions
		WHERE org = $1 AND workspace = $2 ORDER BY version DESC LIMIT 1`, txt(org), txt(workspace)), true)
	return v, stateErr("get state", err)
}

// GetStateVersion implements store.StateStore.
func (s *Store) GetStateVersion(ctx context.Context, org, workspace string, version int64) (store.StateVersion, error) {
	v, err := scanStateVersion(s.pool.QueryRow(ctx, `SELECT `+stateColumns+`, data FROM state_versions
		WHERE org = $1 AND workspace = $2 AND version = $3`, txt(org), txt(workspace), version), true)
	return v, stateErr("get state version", err)
}

// ListStateVersions implements store.StateStore.
func (s *Store) ListStateVersions(ctx context.Context, org, workspace string, limit, offset int) ([]store.StateVersion, int, error) {
	if limit <= 0 {
		return nil, 0, fmt.Errorf("postgres store: list state versions: limit must be positive, got %d", limit)
	}
	org, workspace = txt(org), txt(workspace)
	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM state_versions WHERE org = $1 AND workspace = $2`, org, workspace).Scan(&total); err != nil {
		return nil, 0, stateErr("list state versions", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+stateColumns+` FROM state_versions
		WHERE org = $1 AND workspace = $2 ORDER BY version DESC LIMIT $3 OFFSET $4`, org, workspace, limit, max(offset, 0))
	if err != nil {
		return nil, 0, stateErr("list state versions", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.StateVersion, error) {
		return scanStateVersion(row, false)
	})
	if err != nil {
		return nil, 0, stateErr("list state versions", err)
	}
	return out, int(total), nil
}

// PruneStateVersions implements store.StateStore.
func (s *Store) PruneStateVersions(ctx context.Context, org, workspace string, keep int) (int, error) {
	if keep <= 0 {
		return 0, fmt.Errorf("postgres store: prune state versions: keep must be positive, got %d", keep)
	}
	org, workspace = txt(org), txt(workspace)
	var n int64
	err := s.inStateTx(ctx, org, workspace, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM state_versions WHERE org = $1 AND workspace = $2
			AND version <= (SELECT max(version) FROM state_versions WHERE org = $1 AND workspace = $2) - $3`, org, workspace, keep)
		n = tag.RowsAffected()
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
	l.Org, l.Workspace, l.ID, l.TaskID = txt(l.Org), txt(l.Workspace), txt(l.ID), txt(l.TaskID)
	err := s.inStateTx(ctx, l.Org, l.Workspace, func(tx pgx.Tx) error {
		held, err := heldLock(ctx, tx, l.Org, l.Workspace)
		if err != nil {
			return err
		}
		verdict, err := store.CheckRelock(held, l, renew)
		now := dbTime(time.Now().UTC())
		switch {
		case err != nil:
			return err
		case verdict == store.RelockRenew:
			_, err = tx.Exec(ctx, `UPDATE state_locks SET renewed_at = $1 WHERE org = $2 AND workspace = $3`, now, l.Org, l.Workspace)
		case verdict == store.RelockTake:
			_, err = tx.Exec(ctx, `INSERT INTO state_locks (org, workspace, lock_id, task_id, fence, info, created_at, renewed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
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
	org, workspace = txt(org), txt(workspace)
	var released store.StateLock
	err := s.inStateTx(ctx, org, workspace, func(tx pgx.Tx) error {
		held, err := heldLock(ctx, tx, org, workspace)
		if err != nil {
			return err
		}
		del, err := store.CheckUnlock(held, txt(id))
		if err != nil || !del {
			return err
		}
		released = *held
		_, err = tx.Exec(ctx, `DELETE FROM state_locks WHERE org = $1 AND workspace = $2`, org, workspace)
		return err
	})
	if err != nil {
		return store.StateLock{}, stateErr("unlock state", err)
	}
	return released, nil
}

// GetStateLock implements store.StateStore.
func (s *Store) GetStateLock(ctx context.Context, org, workspace string) (store.StateLock, error) {
	held, err := heldLock(ctx, s.pool, txt(org), txt(workspace))
	if err != nil {
		return store.StateLock{}, stateErr("get state lock", err)
	}
	if held == nil {
		return store.StateLock{}, store.ErrNotFound
	}
	return *held, nil
}

// stateErr wraps err for a state operation (see store.StateErr).
func stateErr(op string, err error) error { return store.StateErr("postgres store: "+op, err) }
