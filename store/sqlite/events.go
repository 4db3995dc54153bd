package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
	"github.com/terratask/terratask/task"
)

const (
	insertEventSQL = `INSERT INTO events (id, org, task_id, agent_id, runner_id, type, occurred_at, body)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	webhookColumns  = `id, org, url, events, agent_id, runner_id, secret, created_at, created_by`
	listWebhooksSQL = `SELECT ` + webhookColumns + ` FROM webhooks WHERE org = ? ORDER BY created_at, id`
	eventColumns    = `seq, id, org, task_id, agent_id, runner_id, type, occurred_at, body`
)

// eventArgs validates e and returns insertEventSQL's arguments.
func eventArgs(e store.Event) ([]any, error) {
	if e.ID == "" || e.Org == "" || e.Type == "" {
		return nil, errors.New("event ID, org and type are required")
	}
	if !json.Valid(e.Body) {
		return nil, fmt.Errorf("event %s: body is not JSON", e.ID)
	}
	return []any{e.ID, e.Org, e.TaskID, e.AgentID, e.RunnerID, string(e.Type), dbTime(e.OccurredAt), string(e.Body)}, nil
}

// RecordTransition writes a transition record in one write transaction and
// returns the org's webhooks when it has an event. Followers of the task
// (and of the org, for an event) are told after the commit.
func (s *Store) RecordTransition(ctx context.Context, r store.TransitionRecord) ([]store.Webhook, error) {
	taskRow, err := taskArgs(r.Task)
	if err != nil {
		return nil, err
	}
	tr := r.Transition
	if tr.ID == "" {
		tr.ID = r.Task.ID
	}
	trArgs, err := transitionArgs(tr)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: record transition of task %s: %w", tr.ID, err)
	}
	logArgs, err := logsArgs(r.Logs)
	if err != nil {
		return nil, err
	}
	var evArgs []any
	if r.Event != nil {
		if evArgs, err = eventArgs(*r.Event); err != nil {
			return nil, fmt.Errorf("sqlite store: record transition of task %s: %w", tr.ID, err)
		}
	}
	// Every statement is fetched before the transaction takes the single
	// write connection (see stmtCache).
	stmts := map[string]*sql.Stmt{}
	for _, q := range []string{insertTaskSQL, applyTransitionSQL, insertEventSQL, listWebhooksSQL} {
		st, release, err := s.wst.get(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: record transition of task %s: %w", tr.ID, err)
		}
		defer release()
		stmts[q] = st
	}
	logs, err := s.prepareBatch(ctx, insertLogs, logArgs)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: record transition of task %s: %w", tr.ID, err)
	}
	defer logs.release()

	var hooks []store.Webhook
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, stmts[insertTaskSQL]).ExecContext(ctx, taskRow...); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, stmts[applyTransitionSQL]).ExecContext(ctx, trArgs...); err != nil {
			return err
		}
		if err := logs.exec(ctx, tx); err != nil {
			return err
		}
		if evArgs == nil {
			return nil
		}
		if _, err := tx.StmtContext(ctx, stmts[insertEventSQL]).ExecContext(ctx, evArgs...); err != nil {
			return err
		}
		hooks, err = scanWebhooks(tx.StmtContext(ctx, stmts[listWebhooksSQL]).QueryContext(ctx, r.Event.Org))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite store: record transition of task %s: %w", tr.ID, err)
	}
	s.feed.publishLogs(r.Logs)
	if r.Event != nil {
		s.feed.publish(store.Change{Org: r.Event.Org})
	}
	return hooks, nil
}

// AppendEvent stores an event once per ID and returns the org's webhooks.
func (s *Store) AppendEvent(ctx context.Context, e store.Event) ([]store.Webhook, error) {
	args, err := eventArgs(e)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: append event: %w", err)
	}
	ins, release, err := s.wst.get(ctx, insertEventSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: append event %s: %w", e.ID, err)
	}
	defer release()
	list, releaseList, err := s.wst.get(ctx, listWebhooksSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: append event %s: %w", e.ID, err)
	}
	defer releaseList()
	var hooks []store.Webhook
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, ins).ExecContext(ctx, args...); err != nil {
			return err
		}
		hooks, err = scanWebhooks(tx.StmtContext(ctx, list).QueryContext(ctx, e.Org))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite store: append event %s: %w", e.ID, err)
	}
	s.feed.publish(store.Change{Org: e.Org})
	return hooks, nil
}

// GetEvent returns an event of org, or store.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, org, id string) (store.Event, error) {
	var e store.Event
	err := s.rst.queryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ? AND org = ?`, []any{id, org},
		func(r *sql.Row) (err error) {
			e, err = scanEvent(r)
			return err
		})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Event{}, fmt.Errorf("sqlite store: event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("sqlite store: event %s: %w", id, err)
	}
	return e, nil
}

// ListEvents returns q.Org's events after q.AfterSeq matching q's filters,
// in Seq order, at most q.Limit.
func (s *Store) ListEvents(ctx context.Context, q store.EventQuery) ([]store.Event, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("sqlite store: list events: limit must be positive, got %d", q.Limit)
	}
	var where strings.Builder
	where.WriteString(`org = ? AND seq > ?`)
	args := []any{q.Org, q.AfterSeq}
	if types := sqlkit.Dedupe(q.Types); len(types) > 0 {
		where.WriteString(` AND type IN (?` + strings.Repeat(`, ?`, len(types)-1) + `)`)
		for _, t := range types {
			args = append(args, string(t))
		}
	}
	for _, f := range []struct{ col, v string }{{"agent_id", q.AgentID}, {"runner_id", q.RunnerID}, {"task_id", q.TaskID}} {
		if f.v != "" {
			where.WriteString(` AND ` + f.col + ` = ?`)
			args = append(args, f.v)
		}
	}
	query := `SELECT ` + eventColumns + ` FROM events WHERE ` + where.String() + ` ORDER BY seq LIMIT ?`
	st, release, err := s.rst.get(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list events: %w", err)
	}
	defer release()
	rows, err := st.QueryContext(ctx, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: list events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list events: %w", err)
	}
	return out, nil
}

// LastEventSeq returns the highest Seq of org's events, 0 when it has none.
func (s *Store) LastEventSeq(ctx context.Context, org string) (int64, error) {
	var seq int64
	err := s.rst.queryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE org = ?`, []any{org},
		func(r *sql.Row) error { return r.Scan(&seq) })
	if err != nil {
		return 0, fmt.Errorf("sqlite store: last event of org %s: %w", org, err)
	}
	return seq, nil
}

func scanEvent(sc scanner) (store.Event, error) {
	var (
		e        store.Event
		typ      string
		occurred int64
		body     string
	)
	if err := sc.Scan(&e.Seq, &e.ID, &e.Org, &e.TaskID, &e.AgentID, &e.RunnerID, &typ, &occurred, &body); err != nil {
		return store.Event{}, err
	}
	e.Type = task.EventType(typ)
	e.OccurredAt = goTime(occurred)
	e.Body = json.RawMessage(body)
	return e, nil
}
