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

// CreateWebhook stores w; an ID that exists is an error.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	if w.ID == "" || w.Org == "" || w.URL == "" {
		return errors.New("sqlite store: create webhook: ID, org and URL are required")
	}
	events, err := json.Marshal(nonNilTypes(w.Events))
	if err != nil {
		return fmt.Errorf("sqlite store: create webhook %s: %w", w.ID, err)
	}
	if w.SealedSecret == nil {
		w.SealedSecret = []byte{}
	}
	if _, err := s.wst.exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.Org, w.URL, string(events), w.AgentID, w.RunnerID, w.SealedSecret, dbTime(w.CreatedAt), w.CreatedBy); err != nil {
		return fmt.Errorf("sqlite store: create webhook %s: %w", w.ID, err)
	}
	return nil
}

func nonNilTypes(ts []task.EventType) []task.EventType {
	if ts == nil {
		return []task.EventType{}
	}
	return ts
}

// GetWebhook returns a webhook of org, or store.ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, org, id string) (store.Webhook, error) {
	st, release, err := s.rst.get(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ? AND org = ?`)
	if err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite store: webhook %s: %w", id, err)
	}
	defer release()
	hooks, err := scanWebhooks(st.QueryContext(ctx, id, org))
	if err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite store: webhook %s: %w", id, err)
	}
	if len(hooks) == 0 {
		return store.Webhook{}, fmt.Errorf("sqlite store: webhook %s: %w", id, store.ErrNotFound)
	}
	return hooks[0], nil
}

// ListWebhooks returns org's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, org string) ([]store.Webhook, error) {
	st, release, err := s.rst.get(ctx, listWebhooksSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list webhooks: %w", err)
	}
	defer release()
	hooks, err := scanWebhooks(st.QueryContext(ctx, org))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list webhooks: %w", err)
	}
	return hooks, nil
}

// scanWebhooks reads rows of webhookColumns and closes them.
func scanWebhooks(rows *sql.Rows, err error) ([]store.Webhook, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var (
			w       store.Webhook
			events  string
			created int64
		)
		if err := rows.Scan(&w.ID, &w.Org, &w.URL, &events, &w.AgentID, &w.RunnerID, &w.SealedSecret, &created, &w.CreatedBy); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
			return nil, fmt.Errorf("webhook %s: decode events: %w", w.ID, err)
		}
		if len(w.Events) == 0 {
			w.Events = nil
		}
		w.CreatedAt = goTime(created)
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWebhook deletes a webhook of org and its delivery log.
func (s *Store) DeleteWebhook(ctx context.Context, org, id string) error {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ? AND org = ?`, id, org)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM deliveries WHERE org = ? AND target = ?`, org, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite store: delete webhook %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite store: webhook %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// AddDelivery records a delivery attempt.
func (s *Store) AddDelivery(ctx context.Context, d store.Delivery) error {
	if d.Org == "" || d.EventID == "" || d.Target == "" {
		return errors.New("sqlite store: add delivery: org, event ID and target are required")
	}
	ok := 0
	if d.Succeeded {
		ok = 1
	}
	if _, err := s.wst.exec(ctx, `INSERT INTO deliveries (org, event_id, event_type, task_id, target, attempt, status_code,
		latency_us, error, succeeded, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.Org, d.EventID, string(d.EventType), d.TaskID, d.Target, d.Attempt, d.StatusCode,
		d.Latency.Microseconds(), d.Error, ok, dbTime(d.At)); err != nil {
		return fmt.Errorf("sqlite store: add delivery of %s: %w", d.EventID, err)
	}
	return nil
}

// ListDeliveries returns delivery attempts to q.Target, newest first.
func (s *Store) ListDeliveries(ctx context.Context, q store.DeliveryQuery) ([]store.Delivery, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("sqlite store: list deliveries: limit must be positive, got %d", q.Limit)
	}
	query := `SELECT id, org, event_id, event_type, task_id, target, attempt, status_code, latency_us, error, succeeded, at
		FROM deliveries WHERE org = ? AND target = ?`
	args := []any{q.Org, q.Target}
	if q.EventID != "" {
		query += ` AND event_id = ?`
		args = append(args, q.EventID)
	}
	if q.BeforeID > 0 {
		query += ` AND id < ?`
		args = append(args, q.BeforeID)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	st, release, err := s.rst.get(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list deliveries: %w", err)
	}
	defer release()
	rows, err := st.QueryContext(ctx, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var (
			d          store.Delivery
			typ        string
			latency    int64
			ok         int
			at         int64
			statusCode int
		)
		if err := rows.Scan(&d.ID, &d.Org, &d.EventID, &typ, &d.TaskID, &d.Target, &d.Attempt, &statusCode,
			&latency, &d.Error, &ok, &at); err != nil {
			return nil, fmt.Errorf("sqlite store: list deliveries: %w", err)
		}
		d.EventType, d.StatusCode, d.Succeeded = task.EventType(typ), statusCode, ok != 0
		d.Latency = microseconds(latency)
		d.At = goTime(at)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list deliveries: %w", err)
	}
	return out, nil
}

// Delivered reports whether an attempt to deliver the event to target
// succeeded.
func (s *Store) Delivered(ctx context.Context, org, eventID, target string) (bool, error) {
	var n int
	err := s.rst.queryRow(ctx, `SELECT count(*) FROM deliveries WHERE event_id = ? AND target = ? AND org = ? AND succeeded = 1`,
		[]any{eventID, target, org}, func(r *sql.Row) error { return r.Scan(&n) })
	if err != nil {
		return false, fmt.Errorf("sqlite store: delivered %s: %w", eventID, err)
	}
	return n > 0, nil
}
