package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
	"github.com/terratask/terratask/task"
)

// eventLockClass is the first key of the advisory locks that serialise an
// org's event inserts, so its event seq values commit in increasing order.
const eventLockClass int32 = 0x7465_7674 // "tevt"

const (
	lockOrgEventsSQL = `SELECT pg_advisory_xact_lock($1::integer, hashtext($2::text))`
	insertEventSQL   = `INSERT INTO events (id, org, task_id, agent_id, runner_id, type, occurred_at, body)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json) ON CONFLICT (id) DO NOTHING`
	notifyOrgSQL     = `SELECT pg_notify($1::text, 'e:' || $2::text)`
	webhookColumns   = `id, org, url, events, agent_id, runner_id, secret, created_at, created_by`
	listWebhooksSQL  = `SELECT ` + webhookColumns + ` FROM webhooks WHERE org = $1 ORDER BY created_at, id`
	eventColumns     = `seq, id, org, task_id, agent_id, runner_id, type, occurred_at, body`
	deliveryColumns  = `id, org, event_id, event_type, task_id, target, attempt, status_code, latency_us, error, succeeded, at`
	maxInt32         = 1<<31 - 1
	eventRequiredMsg = "event ID, org and type are required"
)

// queueEvent queues the statements that store e and read the org's
// webhooks: the org's event lock, the insert, the notification of the
// org's followers and the webhooks' select (the batch's last result).
func queueEvent(b *pgx.Batch, e store.Event) error {
	if e.ID == "" || e.Org == "" || e.Type == "" {
		return errors.New(eventRequiredMsg)
	}
	if !json.Valid(e.Body) {
		return fmt.Errorf("event %s: body is not JSON", e.ID)
	}
	b.Queue(lockOrgEventsSQL, eventLockClass, txt(e.Org))
	b.Queue(insertEventSQL, txt(e.ID), txt(e.Org), txt(e.TaskID), txt(e.AgentID), txt(e.RunnerID), txt(string(e.Type)),
		dbTime(e.OccurredAt), txt(string(e.Body)))
	b.Queue(notifyOrgSQL, changesChannel, txt(e.Org))
	b.Queue(listWebhooksSQL, txt(e.Org))
	return nil
}

// RecordTransition writes a transition record in one implicit transaction
// (one pipelined batch: one round trip) and returns the org's webhooks when
// it has an event. The followers of the task (and of the org) are notified
// when it commits.
func (s *Store) RecordTransition(ctx context.Context, r store.TransitionRecord) ([]store.Webhook, error) {
	row, err := rowOf(r.Task)
	if err != nil {
		return nil, err
	}
	tr := r.Transition
	if tr.ID == "" {
		tr.ID = r.Task.ID
	}
	args, err := transitionArgs(tr)
	if err != nil {
		return nil, fmt.Errorf("postgres store: record transition of task %s: %w", tr.ID, err)
	}
	var b pgx.Batch
	b.Queue(insertTaskSQL, row.id, row.org, row.name, row.description, row.agentID, row.runnerID, row.status, row.progress, row.metadata,
		row.currentStep, row.stepsCompleted, row.totalSteps, row.result,
		row.createdAt, row.updatedAt, row.startedAt, row.completedAt, row.cancelledAt, row.cancelledBy, row.scheduleID)
	b.Queue(applyTransitionSQL, args...)
	if len(r.Logs) > 0 {
		if err := queueLogs(&b, r.Logs); err != nil {
			return nil, err
		}
	}
	if r.Event != nil {
		if err := queueEvent(&b, *r.Event); err != nil {
			return nil, fmt.Errorf("postgres store: record transition of task %s: %w", tr.ID, err)
		}
	}
	hooks, err := s.runBatch(ctx, &b, r.Event != nil)
	if err != nil {
		return nil, fmt.Errorf("postgres store: record transition of task %s: %w", tr.ID, err)
	}
	return hooks, nil
}

// runBatch sends b and, when withHooks, reads its last result as webhooks.
func (s *Store) runBatch(ctx context.Context, b *pgx.Batch, withHooks bool) ([]store.Webhook, error) {
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	n := b.Len()
	if withHooks {
		n--
	}
	for range n {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	var hooks []store.Webhook
	if withHooks {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		if hooks, err = scanWebhooks(rows); err != nil {
			return nil, err
		}
	}
	return hooks, br.Close()
}

// AppendEvent stores an event once per ID and returns the org's webhooks.
func (s *Store) AppendEvent(ctx context.Context, e store.Event) ([]store.Webhook, error) {
	var b pgx.Batch
	if err := queueEvent(&b, e); err != nil {
		return nil, fmt.Errorf("postgres store: append event: %w", err)
	}
	hooks, err := s.runBatch(ctx, &b, true)
	if err != nil {
		return nil, fmt.Errorf("postgres store: append event %s: %w", e.ID, err)
	}
	return hooks, nil
}

// GetEvent returns an event of org, or store.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, org, id string) (store.Event, error) {
	evs, err := s.queryEvents(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1 AND org = $2`, txt(id), txt(org))
	if err != nil {
		return store.Event{}, fmt.Errorf("postgres store: event %s: %w", id, err)
	}
	if len(evs) == 0 {
		return store.Event{}, fmt.Errorf("postgres store: event %s: %w", id, store.ErrNotFound)
	}
	return evs[0], nil
}

// ListEvents returns q.Org's events after q.AfterSeq matching q's filters,
// in Seq order, at most q.Limit.
func (s *Store) ListEvents(ctx context.Context, q store.EventQuery) ([]store.Event, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("postgres store: list events: limit must be positive, got %d", q.Limit)
	}
	args := []any{txt(q.Org), q.AfterSeq}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where strings.Builder
	where.WriteString(`org = $1 AND seq > $2`)
	if types := sqlkit.Dedupe(q.Types); len(types) > 0 {
		ts := make([]string, len(types))
		for i, t := range types {
			ts[i] = txt(string(t))
		}
		where.WriteString(` AND type = ANY(` + param(ts) + `::text[])`)
	}
	for _, f := range []struct{ col, v string }{{"agent_id", q.AgentID}, {"runner_id", q.RunnerID}, {"task_id", q.TaskID}} {
		if f.v != "" {
			where.WriteString(` AND ` + f.col + ` = ` + param(txt(f.v)))
		}
	}
	query := `SELECT ` + eventColumns + ` FROM events WHERE ` + where.String() + ` ORDER BY seq LIMIT ` + param(int64(q.Limit))
	evs, err := s.queryEvents(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list events: %w", err)
	}
	return evs, nil
}

func (s *Store) queryEvents(ctx context.Context, query string, args ...any) ([]store.Event, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var (
			e    store.Event
			typ  string
			body []byte
		)
		if err := rows.Scan(&e.Seq, &e.ID, &e.Org, &e.TaskID, &e.AgentID, &e.RunnerID, &typ, &e.OccurredAt, &body); err != nil {
			return nil, err
		}
		e.Type = task.EventType(typ)
		e.OccurredAt = e.OccurredAt.UTC()
		e.Body = json.RawMessage(body)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LastEventSeq returns the highest Seq of org's events, 0 when it has none.
func (s *Store) LastEventSeq(ctx context.Context, org string) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE org = $1`, txt(org)).Scan(&seq); err != nil {
		return 0, fmt.Errorf("postgres store: last event of org %s: %w", org, err)
	}
	return seq, nil
}
