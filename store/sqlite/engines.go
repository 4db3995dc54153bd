package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/terratask/terratask/store"
)

// PutRunnerHost inserts or replaces a runner host's row and drops the rows
// of its runner not updated for store.RunnerHostTTL, in one transaction.
func (s *Store) PutRunnerHost(ctx context.Context, h store.RunnerHost) error {
	if err := h.Check(); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	engines, err := h.EnginesJSON()
	if err != nil {
		return fmt.Errorf("sqlite store: runner host: %w", err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO runner_hosts (org, runner_id, host_id, identity, engines, started_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org, runner_id, host_id) DO UPDATE SET identity = excluded.identity, engines = excluded.engines,
				started_at = excluded.started_at, updated_at = excluded.updated_at`,
			h.Org, h.RunnerID, h.HostID, h.Identity, string(engines), dbTime(h.StartedAt), dbTime(h.UpdatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM runner_hosts WHERE org = ? AND runner_id = ? AND updated_at < ?`,
			h.Org, h.RunnerID, dbTime(h.UpdatedAt.Add(-store.RunnerHostTTL))); err != nil {
			return fmt.Errorf("pruning the runner's hosts: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite store: runner host %s/%s: %w", h.RunnerID, h.HostID, err)
	}
	return nil
}

// RunnerHosts returns the rows of a runner's hosts, by host ID.
func (s *Store) RunnerHosts(ctx context.Context, org, runnerID string) ([]store.RunnerHost, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT org, runner_id, host_id, identity, engines, started_at, updated_at
		FROM runner_hosts WHERE org = ? AND runner_id = ? ORDER BY host_id`, org, runnerID)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: runner hosts: %w", err)
	}
	defer rows.Close()
	var out []store.RunnerHost
	for rows.Next() {
		var (
			h                store.RunnerHost
			engines          string
			started, updated int64
		)
		if err := rows.Scan(&h.Org, &h.RunnerID, &h.HostID, &h.Identity, &engines, &started, &updated); err != nil {
			return nil, fmt.Errorf("sqlite store: runner hosts: %w", err)
		}
		if err := json.Unmarshal([]byte(engines), &h.Engines); err != nil {
			return nil, fmt.Errorf("sqlite store: runner host %s: engines: %w", h.HostID, err)
		}
		h.StartedAt, h.UpdatedAt = goTime(started), goTime(updated)
		out = append(out, h)
	}
	return out, rows.Err()
}

const scheduleColumns = `id, org, name, kind, agent_id, runner_id, definition, created_by, created_at, updated_at`

func scanSchedule(sc scanner) (store.Schedule, error) {
	var (
		s                store.Schedule
		def              string
		created, updated int64
	)
	if err := sc.Scan(&s.ID, &s.Org, &s.Name, &s.Kind, &s.AgentID, &s.RunnerID, &def, &s.CreatedBy, &created, &updated); err != nil {
		return s, err
	}
	s.Definition = json.RawMessage(def)
	s.CreatedAt, s.UpdatedAt = goTime(created), goTime(updated)
	return s, nil
}

// CreateSchedule inserts a schedule; an existing ID is an error.
func (s *Store) CreateSchedule(ctx context.Context, sc store.Schedule) error {
	if err := sc.Check(); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	if sc.UpdatedAt.IsZero() {
		sc.UpdatedAt = sc.CreatedAt
	}
	if _, err := s.wst.exec(ctx, `INSERT INTO schedules (`+scheduleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sc.ID, sc.Org, sc.Name, sc.Kind, sc.AgentID, sc.RunnerID, string(sc.Definition), sc.CreatedBy,
		dbTime(sc.CreatedAt), dbTime(sc.UpdatedAt)); err != nil {
		return fmt.Errorf("sqlite store: create schedule %s: %w", sc.ID, err)
	}
	return nil
}

// GetSchedule returns a schedule of org, or store.ErrNotFound.
func (s *Store) GetSchedule(ctx context.Context, org, id string) (store.Schedule, error) {
	var out store.Schedule
	err := s.rst.queryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE id = ? AND org = ?`, []any{id, org},
		func(r *sql.Row) error {
			var err error
			out, err = scanSchedule(r)
			return err
		})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Schedule{}, store.ErrNotFound
	}
	if err != nil {
		return store.Schedule{}, fmt.Errorf("sqlite store: schedule %s: %w", id, err)
	}
	return out, nil
}

// UpdateSchedule replaces a schedule's name, kind, agent, runner,
// definition and UpdatedAt.
func (s *Store) UpdateSchedule(ctx context.Context, sc store.Schedule) error {
	if err := sc.Check(); err != nil {
		return fmt.Errorf("sqlite store: %w", err)
	}
	res, err := s.wst.exec(ctx, `UPDATE schedules SET name = ?, kind = ?, agent_id = ?, runner_id = ?, definition = ?, updated_at = ?
		WHERE id = ? AND org = ?`, sc.Name, sc.Kind, sc.AgentID, sc.RunnerID, string(sc.Definition), dbTime(sc.UpdatedAt), sc.ID, sc.Org)
	if err != nil {
		return fmt.Errorf("sqlite store: update schedule %s: %w", sc.ID, err)
	}
	return oneRow(res)
}

// DeleteSchedule removes org's schedule id.
func (s *Store) DeleteSchedule(ctx context.Context, org, id string) error {
	res, err := s.wst.exec(ctx, `DELETE FROM schedules WHERE id = ? AND org = ?`, id, org)
	if err != nil {
		return fmt.Errorf("sqlite store: delete schedule %s: %w", id, err)
	}
	return oneRow(res)
}

func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ListSchedules returns a page of org's schedules, newest first, and the
// number of matching schedules.
func (s *Store) ListSchedules(ctx context.Context, q store.ScheduleQuery) ([]store.Schedule, int, error) {
	if q.Limit <= 0 || q.Offset < 0 {
		return nil, 0, fmt.Errorf("sqlite store: list schedules: limit must be positive and offset not negative")
	}
	where, args := `org = ?`, []any{q.Org}
	if q.AgentID != "" {
		where += ` AND agent_id = ?`
		args = append(args, q.AgentID)
	}
	if q.Kind != "" {
		where += ` AND kind = ?`
		args = append(args, q.Kind)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list schedules: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	rows, err := tx.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE `+where+
		` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list schedules: %w", err)
	}
	var out []store.Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("sqlite store: list schedules: %w", err)
		}
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list schedules: %w", err)
	}
	rows.Close()
	var total int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schedules WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("sqlite store: count schedules: %w", err)
	}
	return out, total, nil
}
