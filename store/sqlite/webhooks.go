package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// CreateWebhook stores w; an ID that exists is an error.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	if err := w.Check(); err != nil {
		return fmt.Errorf("sqlite store: create webhook: %w", err)
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
	if err := d.Check(); err != nil {
		return fmt.Errorf("sqlite store: add delivery: %w", err)
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
