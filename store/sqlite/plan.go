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

// PutPlan implements store.PlanStore. A nil PolicyInput is stored empty.
func (s *Store) PutPlan(ctx context.Context, p store.Plan) error {
	if p.TaskID == "" || p.Org == "" {
		return errors.New("sqlite store: put plan: task ID and org are required")
	}
	sum, err := json.Marshal(p.Summary)
	if err != nil {
		return fmt.Errorf("sqlite store: put plan of task %s: %w", p.TaskID, err)
	}
	_, err = s.wst.exec(ctx, `INSERT INTO plans (task_id, org, summary, plan_json, plan_text, digest, created_at, policy_input)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_id) DO UPDATE SET org = excluded.org, summary = excluded.summary, plan_json = excluded.plan_json,
			plan_text = excluded.plan_text, digest = excluded.digest, created_at = excluded.created_at,
			policy_input = excluded.policy_input`,
		p.TaskID, p.Org, string(sum), store.NonNil(p.JSON), p.Text, p.Digest, dbTime(time.Now()), store.NonNil(p.PolicyInput))
	if err != nil {
		return fmt.Errorf("sqlite store: put plan of task %s: %w", p.TaskID, err)
	}
	return nil
}

// planColumns are the columns GetPlan reads; GetPlanPolicyInput reads
// policy_input after them.
const planColumns = `summary, plan_json, plan_text, digest, created_at`

// GetPlan implements store.PlanStore.
func (s *Store) GetPlan(ctx context.Context, org, id string) (store.Plan, error) {
	return s.getPlan(ctx, org, id, false)
}

// GetPlanPolicyInput implements store.PlanStore. An empty PolicyInput is
// returned nil.
func (s *Store) GetPlanPolicyInput(ctx context.Context, org, id string) (store.Plan, error) {
	return s.getPlan(ctx, org, id, true)
}

// getPlan reads the plan of task id of org, with its policy input when
// withInput (a large blob that only the post_plan check reads).
func (s *Store) getPlan(ctx context.Context, org, id string, withInput bool) (store.Plan, error) {
	p := store.Plan{TaskID: id, Org: org}
	var sum string
	var created int64
	query, dest := `SELECT `+planColumns+` FROM plans WHERE task_id = ? AND org = ?`, []any{&sum, &p.JSON, &p.Text, &p.Digest, &created}
	if withInput {
		query, dest = `SELECT `+planColumns+`, policy_input FROM plans WHERE task_id = ? AND org = ?`, append(dest, &p.PolicyInput)
	}
	err := s.rst.queryRow(ctx, query, []any{id, org}, func(r *sql.Row) error { return r.Scan(dest...) })
	if errors.Is(err, sql.ErrNoRows) {
		return store.Plan{}, fmt.Errorf("sqlite store: plan of task %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Plan{}, fmt.Errorf("sqlite store: plan of task %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(sum), &p.Summary); err != nil {
		return store.Plan{}, fmt.Errorf("sqlite store: plan of task %s: decode summary: %w", id, err)
	}
	if len(p.PolicyInput) == 0 {
		p.PolicyInput = nil
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
