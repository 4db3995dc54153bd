package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/terratask/terratask/store"
)

// PutRunnerHost inserts or replaces a runner host's row and drops the rows
// of its runner not updated for store.RunnerHostTTL, in one transaction.
func (s *Store) PutRunnerHost(ctx context.Context, h store.RunnerHost) error {
	if err := h.Check(); err != nil {
		return fmt.Errorf("postgres store: %w", err)
	}
	doc, err := h.EnginesJSON()
	if err != nil {
		return fmt.Errorf("postgres store: runner host: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO runner_hosts (org, runner_id, host_id, identity, engines, started_at, updated_at)
			VALUES ($1, $2, $3, $4, $5::json, $6, $7)
			ON CONFLICT (org, runner_id, host_id) DO UPDATE SET identity = excluded.identity, engines = excluded.engines,
				started_at = excluded.started_at, updated_at = excluded.updated_at`,
			txt(h.Org), txt(h.RunnerID), txt(h.HostID), txt(h.Identity), string(doc), dbTime(h.StartedAt), dbTime(h.UpdatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM runner_hosts WHERE org = $1 AND runner_id = $2 AND updated_at < $3`,
			txt(h.Org), txt(h.RunnerID), dbTime(h.UpdatedAt.Add(-store.RunnerHostTTL)))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres store: runner host %s/%s: %w", h.RunnerID, h.HostID, err)
	}
	return nil
}

// RunnerHosts returns the rows of a runner's hosts, by host ID.
func (s *Store) RunnerHosts(ctx context.Context, org, runnerID string) ([]store.RunnerHost, error) {
	rows, err := s.pool.Query(ctx, `SELECT org, runner_id, host_id, identity, engines::text, started_at, updated_at
		FROM runner_hosts WHERE org = $1 AND runner_id = $2 ORDER BY host_id`, txt(org), txt(runnerID))
	if err != nil {
		return nil, fmt.Errorf("postgres store: runner hosts: %w", err)
	}
	defer rows.Close()
	var out []store.RunnerHost
	for rows.Next() {
		var (
			h       store.RunnerHost
			engines string
		)
		if err := rows.Scan(&h.Org, &h.RunnerID, &h.HostID, &h.Identity, &engines, &h.StartedAt, &h.UpdatedAt); err != nil {
			return nil, fmt.Errorf("postgres store: runner hosts: %w", err)
		}
		if err := json.Unmarshal([]byte(engines), &h.Engines); err != nil {
			return nil, fmt.Errorf("postgres store: runner host %s: engines: %w", h.HostID, err)
		}
		h.StartedAt, h.UpdatedAt = h.StartedAt.UTC(), h.UpdatedAt.UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}

const scheduleColumns = `id, org, name, kind, agent_id, runner_id, definition::text, created_by, created_at, updated_at`

func scanSchedule(row pgx.Row) (store.Schedule, error) {
	var (
		s   store.Schedule
		def string
	)
	if err := row.Scan(&s.ID, &s.Org, &s.Name, &s.Kind, &s.AgentID, &s.RunnerID, &def, &s.CreatedBy, &s.CreatedAt, &s.UpdatedAt); err != nil {
		return s, err
	}
	s.Definition = json.RawMessage(def)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, nil
}

// CreateSchedule inserts a schedule; an existing ID is an error.
func (s *Store) CreateSchedule(ctx context.Context, sc store.Schedule) error {
	if err := sc.Check(); err != nil {
		return fmt.Errorf("postgres store: %w", err)
	}
	if sc.UpdatedAt.IsZero() {
		sc.UpdatedAt = sc.CreatedAt
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schedules (id, org, name, kind, agent_id, runner_id, definition, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8, $9, $10)`,
		txt(sc.ID), txt(sc.Org), txt(sc.Name), txt(sc.Kind), txt(sc.AgentID), txt(sc.RunnerID), txt(string(sc.Definition)),
		txt(sc.CreatedBy), dbTime(sc.CreatedAt), dbTime(sc.UpdatedAt)); err != nil {
		return fmt.Errorf("postgres store: create schedule %s: %w", sc.ID, err)
	}
	return nil
}

// GetSchedule returns a schedule of org, or store.ErrNotFound.
func (s *Store) GetSchedule(ctx context.Context, org, id string) (store.Schedule, error) {
	sc, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE id = $1 AND org = $2`, txt(id), txt(org)))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Schedule{}, store.ErrNotFound
	}
	if err != nil {
		return store.Schedule{}, fmt.Errorf("postgres store: schedule %s: %w", id, err)
	}
	return sc, nil
}

// UpdateSchedule replaces a schedule's name, kind, agent, runner,
// definition and UpdatedAt.
func (s *Store) UpdateSchedule(ctx context.Context, sc store.Schedule) error {
	if err := sc.Check(); err != nil {
		return fmt.Errorf("postgres store: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE schedules SET name = $1, kind = $2, agent_id = $3, runner_id = $4, definition = $5::json, updated_at = $6
		WHERE id = $7 AND org = $8`, txt(sc.Name), txt(sc.Kind), txt(sc.AgentID), txt(sc.RunnerID), txt(string(sc.Definition)),
		dbTime(sc.UpdatedAt), txt(sc.ID), txt(sc.Org))
	if err != nil {
		return fmt.Errorf("postgres store: update schedule %s: %w", sc.ID, err)
	}
	return oneRow(tag)
}

// DeleteSchedule removes org's schedule id.
func (s *Store) DeleteSchedule(ctx context.Context, org, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM schedules WHERE id = $1 AND org = $2`, txt(id), txt(org))
	if err != nil {
		return fmt.Errorf("postgres store: delete schedule %s: %w", id, err)
	}
	return oneRow(tag)
}

func oneRow(tag pgconn.CommandTag) error {
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ListSchedules returns a page of org's schedules, newest first, and the
// number of matching schedules, from one snapshot.
func (s *Store) ListSchedules(ctx context.Context, q store.ScheduleQuery) ([]store.Schedule, int, error) {
	if q.Limit <= 0 || q.Offset < 0 {
		return nil, 0, fmt.Errorf("postgres store: list schedules: limit must be positive and offset not negative")
	}
	args := []any{txt(q.Org)}
	where := `org = $1`
	if q.AgentID != "" {
		args = append(args, txt(q.AgentID))
		where += ` AND agent_id = $` + strconv.Itoa(len(args))
	}
	if q.Kind != "" {
		args = append(args, txt(q.Kind))
		where += ` AND kind = $` + strconv.Itoa(len(args))
	}
	n := len(args)
	query := `SELECT c.total, s.* FROM (SELECT count(*) AS total FROM schedules WHERE ` + where + `) AS c
LEFT JOIN LATERAL (SELECT ` + scheduleColumns + ` FROM schedules WHERE ` + where +
		` ORDER BY created_at DESC, id DESC LIMIT $` + strconv.Itoa(n+1) + ` OFFSET $` + strconv.Itoa(n+2) + `) AS s ON true
ORDER BY s.created_at DESC, s.id DESC`
	rows, err := s.pool.Query(ctx, query, append(args, int64(q.Limit), int64(q.Offset))...)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres store: list schedules: %w", err)
	}
	defer rows.Close()
	var (
		total int64
		out   []store.Schedule
	)
	for rows.Next() {
		var (
			id, org, name, kind, agent, runner, def, by *string
			created, updated                            *time.Time
			sc                                          store.Schedule
		)
		if err := rows.Scan(&total, &id, &org, &name, &kind, &agent, &runner, &def, &by, &created, &updated); err != nil {
			return nil, 0, fmt.Errorf("postgres store: list schedules: %w", err)
		}
		if id == nil {
			continue // past the end: the total only
		}
		sc.ID, sc.Org, sc.Name, sc.Kind, sc.AgentID, sc.RunnerID, sc.CreatedBy = *id, *org, *name, *kind, *agent, *runner, *by
		sc.Definition = json.RawMessage(*def)
		sc.CreatedAt, sc.UpdatedAt = created.UTC(), updated.UTC()
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres store: list schedules: %w", err)
	}
	return out, int(total), nil
}
