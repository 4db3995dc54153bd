package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// workspaceColumns are the stored columns of a workspace.
const workspaceColumns = `org, name, agents, created_at, created_by, updated_at, updated_by, latest_task_id, latest_task_at`

// workspaceViewSQL selects workspaces (alias w) with the read-only fields:
// the latest task's status, the latest state version and the held lock.
const workspaceViewSQL = `SELECT w.org, w.name, w.agents, w.created_at, w.created_by, w.updated_at, w.updated_by,
	w.latest_task_id, w.latest_task_at, coalesce(t.status, ''),
	v.version, v.serial, v.lineage, v.md5, v.size, v.task_id, v.created_at,
	l.lock_id, l.task_id, l.fence, l.info, l.created_at, l.renewed_at
FROM workspaces w
LEFT JOIN tasks t ON t.id = w.latest_task_id AND t.org = w.org
LEFT JOIN state_versions v ON v.org = w.org AND v.workspace = w.name
	AND v.version = (SELECT max(version) FROM state_versions WHERE org = w.org AND workspace = w.name)
LEFT JOIN state_locks l ON l.org = w.org AND l.workspace = w.name`

// agentFilter keeps the workspaces whose agents hold the argument.
const agentFilter = ` AND EXISTS (SELECT 1 FROM json_each(w.agents) WHERE json_each.value = ?)`

// agentsJSON is agents as stored: a JSON array, '[]' for none.
func agentsJSON(agents []string) (string, error) {
	if len(agents) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(agents)
	return string(b), err
}

// scanWorkspace reads a row of workspaceColumns.
func scanWorkspace(sc scanner) (store.Workspace, error) {
	var (
		w                        store.Workspace
		agents                   string
		created, updated, latest int64
	)
	if err := sc.Scan(&w.Org, &w.Name, &agents, &created, &w.CreatedBy, &updated, &w.UpdatedBy, &w.LatestTaskID, &latest); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return w, store.ErrNotFound
		}
		return w, err
	}
	if err := json.Unmarshal([]byte(agents), &w.Agents); err != nil {
		return w, fmt.Errorf("workspace %s: agents: %w", w.Name, err)
	}
	if w.Agents == nil {
		w.Agents = []string{}
	}
	w.CreatedAt, w.UpdatedAt = goTime(created), goTime(updated)
	if latest != 0 {
		w.LatestTaskAt = goTime(latest)
	}
	return w, nil
}

// scanWorkspaceView reads a row of workspaceViewSQL.
func scanWorkspaceView(sc scanner) (store.Workspace, error) {
	var (
		w                        store.Workspace
		agents, status           string
		created, updated, latest int64
		version, serial, size    sql.NullInt64
		lineage, md5, vTask      sql.NullString
		vCreated                 sql.NullInt64
		lockID, lTask            sql.NullString
		fence                    sql.NullInt64
		info                     []byte
		lCreated, lRenewed       sql.NullInt64
	)
	err := sc.Scan(&w.Org, &w.Name, &agents, &created, &w.CreatedBy, &updated, &w.UpdatedBy, &w.LatestTaskID, &latest, &status,
		&version, &serial, &lineage, &md5, &size, &vTask, &vCreated,
		&lockID, &lTask, &fence, &info, &lCreated, &lRenewed)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return w, store.ErrNotFound
		}
		return w, err
	}
	if err := json.Unmarshal([]byte(agents), &w.Agents); err != nil {
		return w, fmt.Errorf("workspace %s: agents: %w", w.Name, err)
	}
	if w.Agents == nil {
		w.Agents = []string{}
	}
	w.CreatedAt, w.UpdatedAt = goTime(created), goTime(updated)
	if latest != 0 {
		w.LatestTaskAt = goTime(latest)
	}
	w.LatestTaskStatus = task.Status(status)
	if version.Valid {
		w.State = &store.StateVersion{Org: w.Org, Workspace: w.Name, Version: version.Int64, Serial: serial.Int64,
			Lineage: lineage.String, MD5: md5.String, Size: size.Int64, TaskID: vTask.String, CreatedAt: goTime(vCreated.Int64)}
	}
	if lockID.Valid {
		w.Lock = &store.StateLock{Org: w.Org, Workspace: w.Name, ID: lockID.String, TaskID: lTask.String, Fence: fence.Int64,
			Info: info, CreatedAt: goTime(lCreated.Int64), RenewedAt: goTime(lRenewed.Int64)}
	}
	return w, nil
}

// ClaimWorkspace implements store.WorkspaceStore in one write transaction
// (SQLite's single writer orders it with every other claim and change).
func (s *Store) ClaimWorkspace(ctx context.Context, c store.WorkspaceClaim) (store.Workspace, error) {
	if c.Org == "" || c.Name == "" {
		return store.Workspace{}, errors.New("sqlite store: claim workspace: org and name are required")
	}
	c.At = c.At.UTC().Truncate(time.Microsecond)
	var out store.Workspace
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		fresh := store.NewWorkspace(c)
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (`+workspaceColumns+`) VALUES (?, ?, '[]', ?, ?, ?, ?, '', 0)
			ON CONFLICT (org, name) DO NOTHING`,
			c.Org, c.Name, dbTime(fresh.CreatedAt), fresh.CreatedBy, dbTime(fresh.UpdatedAt), fresh.UpdatedBy); err != nil {
			return err
		}
		cur, err := scanWorkspace(tx.QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE org = ? AND name = ?`, c.Org, c.Name))
		if err != nil {
			return err
		}
		next, changed, err := store.ApplyClaim(cur, c)
		out = next
		if err != nil || !changed {
			return err
		}
		agents, err := agentsJSON(next.Agents)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE workspaces SET agents = ?, updated_at = ?, updated_by = ?, latest_task_id = ?, latest_task_at = ?
			WHERE org = ? AND name = ?`,
			agents, dbTime(next.UpdatedAt), next.UpdatedBy, next.LatestTaskID, latestAt(next.LatestTaskAt), c.Org, c.Name)
		return err
	})
	if errors.Is(err, store.ErrNotGranted) {
		return out, err
	}
	if err != nil {
		return store.Workspace{}, fmt.Errorf("sqlite store: claim workspace %s: %w", c.Name, err)
	}
	return out, nil
}

// latestAt is a latest task time as stored: 0 for none.
func latestAt(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return dbTime(t)
}

// SetWorkspaceAgents implements store.WorkspaceStore.
func (s *Store) SetWorkspaceAgents(ctx context.Context, org, name string, agents []string, by string, at time.Time) (store.Workspace, error) {
	if org == "" || name == "" {
		return store.Workspace{}, errors.New("sqlite store: set workspace agents: org and name are required")
	}
	list, err := agentsJSON(agents)
	if err != nil {
		return store.Workspace{}, fmt.Errorf("sqlite store: set workspace agents: %w", err)
	}
	if _, err := s.wst.exec(ctx, `INSERT INTO workspaces (`+workspaceColumns+`) VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?5, '', 0)
		ON CONFLICT (org, name) DO UPDATE SET agents = excluded.agents, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		org, name, list, dbTime(at), by); err != nil {
		return store.Workspace{}, fmt.Errorf("sqlite store: set workspace %s agents: %w", name, err)
	}
	return s.GetWorkspace(ctx, org, name)
}

// GetWorkspace implements store.WorkspaceStore.
func (s *Store) GetWorkspace(ctx context.Context, org, name string) (store.Workspace, error) {
	var w store.Workspace
	err := s.rst.queryRow(ctx, workspaceViewSQL+` WHERE w.org = ? AND w.name = ?`, []any{org, name}, func(r *sql.Row) error {
		var err error
		w, err = scanWorkspaceView(r)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return w, fmt.Errorf("sqlite store: get workspace %s: %w", name, err)
	}
	return w, err
}

// ListWorkspaces implements store.WorkspaceStore.
func (s *Store) ListWorkspaces(ctx context.Context, q store.WorkspaceQuery) ([]store.Workspace, int, error) {
	if q.Limit <= 0 {
		return nil, 0, errors.New("sqlite store: list workspaces: limit must be > 0")
	}
	where, args := ` WHERE w.org = ?`, []any{q.Org}
	if q.Agent != "" {
		where += agentFilter
		args = append(args, q.Agent)
	}
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM workspaces w`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list workspaces: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, workspaceViewSQL+where+` ORDER BY w.name LIMIT ? OFFSET ?`, append(args, q.Limit, max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list workspaces: %w", err)
	}
	defer rows.Close()
	out := []store.Workspace{}
	for rows.Next() {
		w, err := scanWorkspaceView(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("sqlite store: list workspaces: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list workspaces: %w", err)
	}
	return out, total, nil
}
