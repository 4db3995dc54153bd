package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
)

// PutPlan implements store.PlanStore. A nil PolicyInput is stored empty.
func (s *Store) PutPlan(ctx context.Context, p store.Plan) error {
	if p.TaskID == "" || p.Org == "" {
		return errors.New("postgres store: put plan: task ID and org are required")
	}
	sum, err := json.Marshal(p.Summary)
	if err != nil {
		return fmt.Errorf("postgres store: put plan of task %s: %w", p.TaskID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO plans (task_id, org, summary, plan_json, plan_text, digest, created_at, policy_input)
		VALUES ($1, $2, $3::json, $4, $5, $6, $7, $8)
		ON CONFLICT (task_id) DO UPDATE SET org = excluded.org, summary = excluded.summary, plan_json = excluded.plan_json,
			plan_text = excluded.plan_text, digest = excluded.digest, created_at = excluded.created_at,
			policy_input = excluded.policy_input`,
		txt(p.TaskID), txt(p.Org), string(sum), store.NonNil(p.JSON), txt(p.Text), txt(p.Digest), dbTime(time.Now()),
		store.NonNil(p.PolicyInput))
	if err != nil {
		return fmt.Errorf("postgres store: put plan of task %s: %w", p.TaskID, err)
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
// withInput (a large value, kept out of line by TOAST, that only the
// post_plan check reads).
func (s *Store) getPlan(ctx context.Context, org, id string, withInput bool) (store.Plan, error) {
	p := store.Plan{TaskID: id, Org: org}
	var sum []byte
	query, dest := `SELECT `+planColumns+` FROM plans WHERE task_id = $1 AND org = $2`, []any{&sum, &p.JSON, &p.Text, &p.Digest, &p.CreatedAt}
	if withInput {
		query, dest = `SELECT `+planColumns+`, policy_input FROM plans WHERE task_id = $1 AND org = $2`, append(dest, &p.PolicyInput)
	}
	err := s.pool.QueryRow(ctx, query, txt(id), txt(org)).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Plan{}, fmt.Errorf("postgres store: plan of task %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Plan{}, fmt.Errorf("postgres store: plan of task %s: %w", id, err)
	}
	if err := json.Unmarshal(sum, &p.Summary); err != nil {
		return store.Plan{}, fmt.Errorf("postgres store: plan of task %s: decode summary: %w", id, err)
	}
	p.JSON = store.NonNil(p.JSON)
	if len(p.PolicyInput) == 0 {
		p.PolicyInput = nil
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return p, nil
}

// PutPlanFile implements store.PlanStore.
func (s *Store) PutPlanFile(ctx context.Context, f store.PlanFile) error {
	if f.TaskID == "" || f.Org == "" {
		return errors.New("postgres store: put plan file: task ID and org are required")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO plan_files (task_id, org, digest, data, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (task_id) DO UPDATE SET org = excluded.org, digest = excluded.digest, data = excluded.data,
			created_at = excluded.created_at`,
		txt(f.TaskID), txt(f.Org), txt(f.Digest), store.NonNil(f.Data), dbTime(time.Now()))
	if err != nil {
		return fmt.Errorf("postgres store: put plan file of task %s: %w", f.TaskID, err)
	}
	return nil
}

// GetPlanFile implements store.PlanStore.
func (s *Store) GetPlanFile(ctx context.Context, org, id string) (store.PlanFile, error) {
	f := store.PlanFile{TaskID: id, Org: org}
	err := s.pool.QueryRow(ctx, `SELECT digest, data, created_at FROM plan_files WHERE task_id = $1 AND org = $2`,
		txt(id), txt(org)).Scan(&f.Digest, &f.Data, &f.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.PlanFile{}, fmt.Errorf("postgres store: plan file of task %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.PlanFile{}, fmt.Errorf("postgres store: plan file of task %s: %w", id, err)
	}
	f.Data = store.NonNil(f.Data)
	f.CreatedAt = f.CreatedAt.UTC()
	return f, nil
}

// DeletePlanFile implements store.PlanStore.
func (s *Store) DeletePlanFile(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM plan_files WHERE task_id = $1`, txt(id)); err != nil {
		return fmt.Errorf("postgres store: delete plan file of task %s: %w", id, err)
	}
	return nil
}
