package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// CreateWebhook stores w; an ID that exists is an error.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	if err := w.Check(); err != nil {
		return fmt.Errorf("postgres store: create webhook: %w", err)
	}
	events := make([]string, len(w.Events))
	for i, e := range w.Events {
		events[i] = txt(string(e))
	}
	if w.SealedSecret == nil {
		w.SealedSecret = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		txt(w.ID), txt(w.Org), txt(w.URL), events, txt(w.AgentID), txt(w.RunnerID), w.SealedSecret,
		dbTime(w.CreatedAt), txt(w.CreatedBy)); err != nil {
		return fmt.Errorf("postgres store: create webhook %s: %w", w.ID, err)
	}
	return nil
}

// GetWebhook returns a webhook of org, or store.ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, org, id string) (store.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND org = $2`, txt(id), txt(org))
	if err != nil {
		return store.Webhook{}, fmt.Errorf("postgres store: webhook %s: %w", id, err)
	}
	hooks, err := scanWebhooks(rows)
	if err != nil {
		return store.Webhook{}, fmt.Errorf("postgres store: webhook %s: %w", id, err)
	}
	if len(hooks) == 0 {
		return store.Webhook{}, fmt.Errorf("postgres store: webhook %s: %w", id, store.ErrNotFound)
	}
	return hooks[0], nil
}

// ListWebhooks returns org's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, org string) ([]store.Webhook, error) {
	rows, err := s.pool.Query(ctx, listWebhooksSQL, txt(org))
	if err != nil {
		return nil, fmt.Errorf("postgres store: list webhooks: %w", err)
	}
	hooks, err := scanWebhooks(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list webhooks: %w", err)
	}
	return hooks, nil
}

// scanWebhooks reads rows of webhookColumns and closes them.
func scanWebhooks(rows pgx.Rows) ([]store.Webhook, error) {
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var (
			w      store.Webhook
			events []string
		)
		if err := rows.Scan(&w.ID, &w.Org, &w.URL, &events, &w.AgentID, &w.RunnerID, &w.SealedSecret, &w.CreatedAt, &w.CreatedBy); err != nil {
			return nil, err
		}
		for _, e := range events {
			w.Events = append(w.Events, task.EventType(e))
		}
		w.CreatedAt = w.CreatedAt.UTC()
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWebhook deletes a webhook of org and its delivery log.
func (s *Store) DeleteWebhook(ctx context.Context, org, id string) error {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE id = $1 AND org = $2`, txt(id), txt(org))
		if err != nil {
			return err
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM deliveries WHERE org = $1 AND target = $2`, txt(org), txt(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres store: delete webhook %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("postgres store: webhook %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// AddDelivery records a delivery attempt.
func (s *Store) AddDelivery(ctx context.Context, d store.Delivery) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("postgres store: add delivery: %w", err)
	}
	if d.Attempt < 0 || d.Attempt > maxInt32 || d.StatusCode < 0 || d.StatusCode > maxInt32 {
		return fmt.Errorf("postgres store: add delivery of %s: attempt or status out of range", d.EventID)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO deliveries (org, event_id, event_type, task_id, target, attempt, status_code,
		latency_us, error, succeeded, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		txt(d.Org), txt(d.EventID), txt(string(d.EventType)), txt(d.TaskID), txt(d.Target), int32(d.Attempt), int32(d.StatusCode),
		d.Latency.Microseconds(), txt(d.Error), d.Succeeded, dbTime(d.At)); err != nil {
		return fmt.Errorf("postgres store: add delivery of %s: %w", d.EventID, err)
	}
	return nil
}

// ListDeliveries returns delivery attempts to q.Target, newest first.
func (s *Store) ListDeliveries(ctx context.Context, q store.DeliveryQuery) ([]store.Delivery, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("postgres store: list deliveries: limit must be positive, got %d", q.Limit)
	}
	query := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE org = $1 AND target = $2`
	args := []any{txt(q.Org), txt(q.Target)}
	if q.EventID != "" {
		args = append(args, txt(q.EventID))
		query += ` AND event_id = $` + strconv.Itoa(len(args))
	}
	if q.BeforeID > 0 {
		args = append(args, q.BeforeID)
		query += ` AND id < $` + strconv.Itoa(len(args))
	}
	args = append(args, int64(q.Limit))
	query += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var (
			d                   store.Delivery
			typ                 string
			attempt, statusCode int32
			latency             int64
		)
		if err := rows.Scan(&d.ID, &d.Org, &d.EventID, &typ, &d.TaskID, &d.Target, &attempt, &statusCode,
			&latency, &d.Error, &d.Succeeded, &d.At); err != nil {
			return nil, fmt.Errorf("postgres store: list deliveries: %w", err)
		}
		d.EventType, d.Attempt, d.StatusCode = task.EventType(typ), int(attempt), int(statusCode)
		d.Latency = time.Duration(latency) * time.Microsecond
		d.At = d.At.UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list deliveries: %w", err)
	}
	return out, nil
}

// Delivered reports whether an attempt to deliver the event to target
// succeeded.
func (s *Store) Delivered(ctx context.Context, org, eventID, target string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE event_id = $1 AND target = $2 AND org = $3 AND succeeded)`,
		txt(eventID), txt(target), txt(org)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("postgres store: delivered %s: %w", eventID, err)
	}
	return ok, nil
}
