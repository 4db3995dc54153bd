package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/terratask/terratask/store"
)

// PutPlan implements store.PlanStore.
func (s *Store) PutPlan(ctx context.Context, p store.Plan) error {
	if p.TaskID == "" || p.Org == "" {
		return errors.New("sqlite store: put plan: task ID and org are required")
	}
	sum, err := json.Marshal(p.Summary)
	if err != nil {
		return fmt.Errorf("sqlite store: put plan of task %s: %w", p.TaskID, err)
	}
	_, err = s.wst.exec(ctx, `INSERT INTO plans (task_id, org, summary, plan_json, plan_text, digest, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_id) DO UPDATE SET org = excluded.org, summary = excluded.summary, plan_json = excluded.plan_json,
			plan_text = excluded.plan_text, digest = excluded.digest, created_at = excluded.created_at`,
		p.TaskID, p.Org, string(sum), store.NonNil(p.JSON), p.Text, p.Digest, dbTime(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite store: put plan of task %s: %w", p.TaskID, err)
	}
	return nil
}

// GetPlan implements store.PlanStore.
func (s *Store) GetPlan(ctx context.Context, org, id string) (store.Plan, error) {
	p := store.Plan{TaskID: id, Org: org}
	var sum string
	var created int64
	err := s.rst.queryRow(ctx, `SELECT summary, plan_json, plan_text, digest, created_at FROM plans WHERE task_id = ? AND org = ?`,
		[]any{id, org}, func(r *sql.Row) error { return r.Scan(&sum, &p.JSON, &p.Text, &p.Digest, &created) })
	if errors.Is(err, sql.ErrNoRows) {
		return store.Plan{}, fmt.Errorf("sqlite store: plan of task %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Plan{}, fmt.Errorf("sqlite store: plan of task %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(sum), &p.Summary); err != nil {
		return store.Plan{}, fmt.Errorf("sqlite store: plan of task %s: decode summary: %w", id, err)
	}
	p.CreatedAt = goTime(created)
	return p, nil
}

// PutPlanFile implements store.PlanStore.
func (s *Store) PutPlanFile(ctx context.Context, f store.PlanFile) error {
	if f.TaskID == "" || f.Org == "" {
		return errors.New("sqlite store: put plan file: task ID and org are required")
	}
	_, err := s.wst.exec(ctx, `INSERT INTO plan_files (task_id, org, digest, data, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (task_id) DO UPDATE SET org = excluded.org, digest = excluded.digest, data = excluded.data,
			created_at = excluded.created_at`,
		f.TaskID, f.Org, f.Digest, store.NonNil(f.Data), dbTime(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite store: put plan file of task %s: %w", f.TaskID, err)
	}
	return nil
}

// GetPlanFile implements store.PlanStore.
func (s *Store) GetPlanFile(ctx context.Context, org, id string) (store.PlanFile, error) {
	f := store.PlanFile{TaskID: id, Org: org}
	var created int64
	err := s.rst.queryRow(ctx, `SELECT digest, data, created_at FROM plan_files WHERE task_id = ? AND org = ?`,
		[]any{id, org}, func(r *sql.Row) error { return r.Scan(&f.Digest, &f.Data, &created) })
	if errors.Is(err, sql.ErrNoRows) {
		return store.PlanFile{}, fmt.Errorf("sqlite store: plan file of task %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.PlanFile{}, fmt.Errorf("sqlite store: plan file of task %s: %w", id, err)
	}
	f.Data = store.NonNil(f.Data)
	f.CreatedAt = goTime(created)
	return f, nil
}

// DeletePlanFile implements store.PlanStore.
func (s *Store) DeletePlanFile(ctx context.Context, id string) error {
	if _, err := s.wst.exec(ctx, `DELETE FROM plan_files WHERE task_id = ?`, id); err != nil {
		return fmt.Errorf("sqlite store: delete plan file of task %s: %w", id, err)
	}
	return nil
}
