package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
LEFT JOIN LATERAL (SELECT version, serial, lineage, md5, size, task_id, created_at FROM state_versions
	WHERE org = w.org AND workspace = w.name ORDER BY version DESC LIMIT 1) v ON true
LEFT JOIN state_locks l ON l.org = w.org AND l.workspace = w.name`

// txts is agents as stored: txt of each, an empty array for nil.
func txts(agents []string) []string {
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = txt(a)
	}
	return out
}

// scanWorkspace reads a row of workspaceColumns.
func scanWorkspace(row pgx.Row) (store.Workspace, error) {
	var (
		w      store.Workspace
		latest *time.Time
	)
	if err := row.Scan(&w.Org, &w.Name, &w.Agents, &w.CreatedAt, &w.CreatedBy, &w.UpdatedAt, &w.UpdatedBy, &w.LatestTaskID, &latest); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return w, store.ErrNotFound
		}
		return w, err
	}
	finishWorkspace(&w, latest)
	return w, nil
}

// finishWorkspace normalises a scanned workspace: UTC times, a non-nil
// Agents.
func finishWorkspace(w *store.Workspace, latest *time.Time) {
	if w.Agents == nil {
		w.Agents = []string{}
	}
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	if latest != nil {
		w.LatestTaskAt = latest.UTC()
	}
}

// scanWorkspaceView reads a row of workspaceViewSQL.
func scanWorkspaceView(row pgx.Row) (store.Workspace, error) {
	var (
		w                     store.Workspace
		latest                *time.Time
		status                string
		version, serial, size *int64
		lineage, md5, vTask   *string
		vCreated              *time.Time
		lockID, lTask         *string
		fence                 *int64
		info                  []byte
		lCreated, lRenewed    *time.Time
	)
	err := row.Scan(&w.Org, &w.Name, &w.Agents, &w.CreatedAt, &w.CreatedBy, &w.UpdatedAt, &w.UpdatedBy, &w.LatestTaskID, &latest, &status,
		&version, &serial, &lineage, &md5, &size, &vTask, &vCreated,
		&lockID, &lTask, &fence, &info, &lCreated, &lRenewed)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return w, store.ErrNotFound
		}
		return w, err
	}
	finishWorkspace(&w, latest)
	w.LatestTaskStatus = task.Status(status)
	if version != nil {
		w.State = &store.StateVersion{Org: w.Org, Workspace: w.Name, Version: *version, Serial: *serial,
			Lineage: *lineage, MD5: *md5, Size: *size, TaskID: *vTask, CreatedAt: vCreated.UTC()}
	}
	if lockID != nil {
		w.Lock = &store.StateLock{Org: w.Org, Workspace: w.Name, ID: *lockID, TaskID: *lTask, Fence: *fence,
			Info: info, CreatedAt: lCreated.UTC(), RenewedAt: lRenewed.UTC()}
	}
	return w, nil
}

// ClaimWorkspace implements store.WorkspaceStore in one transaction: it
// inserts the workspace unless it exists (a concurrent insert of the same
// workspace waits for the other to commit, then inserts nothing), then
// locks its row, so claims and changes of one workspace are serialised
// across replicas.
func (s *Store) ClaimWorkspace(ctx context.Context, c store.WorkspaceClaim) (store.Workspace, error) {
	if c.Org == "" || c.Name == "" {
		return store.Workspace{}, errors.New("postgres store: claim workspace: org and name are required")
	}
	c.Org, c.Name, c.Agent, c.TaskID, c.By = txt(c.Org), txt(c.Name), txt(c.Agent), txt(c.TaskID), txt(c.By)
	c.At = dbTime(c.At)
	var out store.Workspace
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		fresh := store.NewWorkspace(c)
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (`+workspaceColumns+`) VALUES ($1, $2, '{}', $3, $4, $5, $6, '', NULL)
			ON CONFLICT (org, name) DO NOTHING`,
			c.Org, c.Name, fresh.CreatedAt, fresh.CreatedBy, fresh.UpdatedAt, fresh.UpdatedBy); err != nil {
			return err
		}
		cur, err := scanWorkspace(tx.QueryRow(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE org = $1 AND name = $2 FOR UPDATE`, c.Org, c.Name))
		if err != nil {
			return err
		}
		next, changed, err := store.ApplyClaim(cur, c)
		out = next
		if err != nil || !changed {
			return err
		}
		var latest *time.Time
		if !next.LatestTaskAt.IsZero() {
			latest = &next.LatestTaskAt
		}
		_, err = tx.Exec(ctx, `UPDATE workspaces SET agents = $1, updated_at = $2, updated_by = $3, latest_task_id = $4, latest_task_at = $5
			WHERE org = $6 AND name = $7`,
			next.Agents, next.UpdatedAt, next.UpdatedBy, next.LatestTaskID, latest, c.Org, c.Name)
		return err
	})
	if errors.Is(err, store.ErrNotGranted) {
		return out, err
	}
	if err != nil {
		return store.Workspace{}, fmt.Errorf("postgres store: claim workspace %s: %w", c.Name, err)
	}
	return out, nil
}

// SetWorkspaceAgents implements store.WorkspaceStore.
func (s *Store) SetWorkspaceAgents(ctx context.Context, org, name string, agents []string, by string, at time.Time) (store.Workspace, error) {
	if org == "" || name == "" {
		return store.Workspace{}, errors.New("postgres store: set workspace agents: org and name are required")
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO workspaces (`+workspaceColumns+`) VALUES ($1, $2, $3, $4, $5, $4, $5, '', NULL)
		ON CONFLICT (org, name) DO UPDATE SET agents = excluded.agents, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		txt(org), txt(name), txts(agents), dbTime(at), txt(by)); err != nil {
		return store.Workspace{}, fmt.Errorf("postgres store: set workspace %s agents: %w", name, err)
	}
	return s.GetWorkspace(ctx, org, name)
}

// GetWorkspace implements store.WorkspaceStore.
func (s *Store) GetWorkspace(ctx context.Context, org, name string) (store.Workspace, error) {
	w, err := scanWorkspaceView(s.pool.QueryRow(ctx, workspaceViewSQL+` WHERE w.org = $1 AND w.name = $2`, txt(org), txt(name)))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return w, fmt.Errorf("postgres store: get workspace %s: %w", name, err)
	}
	return w, err
}

// ListWorkspaces implements store.WorkspaceStore.
func (s *Store) ListWorkspaces(ctx context.Context, q store.WorkspaceQuery) ([]store.Workspace, int, error) {
	if q.Limit <= 0 {
		return nil, 0, errors.New("postgres store: list workspaces: limit must be > 0")
	}
	where, args := ` WHERE w.org = $1`, []any{txt(q.Org)}
	if q.Agent != "" {
		where += ` AND $2 = ANY(w.agents)`
		args = append(args, txt(q.Agent))
	}
	n := len(args)
	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM workspaces w`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("postgres store: list workspaces: %w", err)
	}
	rows, err := s.pool.Query(ctx, workspaceViewSQL+where+fmt.Sprintf(` ORDER BY w.name LIMIT $%d OFFSET $%d`, n+1, n+2),
		append(args, int64(q.Limit), int64(max(q.Offset, 0)))...)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres store: list workspaces: %w", err)
	}
	defer rows.Close()
	out := []store.Workspace{}
	for rows.Next() {
		w, err := scanWorkspaceView(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("postgres store: list workspaces: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres store: list workspaces: %w", err)
	}
	return out, int(total), nil
}
