package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// taskRow is a task as bound to the statements that insert it.
type taskRow struct {
	id, org, name, description, agentID, runnerID, status string
	progress                                              int32
	metadata                                              []byte
	currentStep                                           string
	stepsCompleted, totalSteps                            int32
	result                                                []byte
	createdAt, updatedAt                                  time.Time
	startedAt, completedAt, cancelledAt                   *time.Time
	cancelledBy, scheduleID                               string
}

// int32Of converts a count the schema stores as integer.
func int32Of(field string, v int) (int32, error) {
	if int(int32(v)) != v {
		return 0, fmt.Errorf("%s %d out of range", field, v)
	}
	return int32(v), nil
}

// rowOf validates t and returns it as stored. An empty status is pending; a
// zero UpdatedAt is CreatedAt.
func rowOf(t store.Task) (taskRow, error) {
	if t.ID == "" {
		return taskRow{}, errors.New("postgres store: task ID is required")
	}
	if t.Org == "" {
		return taskRow{}, fmt.Errorf("postgres store: task %s: org is required", t.ID)
	}
	if t.Status == "" {
		t.Status = task.StatusPending
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt
	}
	r := taskRow{
		id: txt(t.ID), org: txt(t.Org), name: txt(t.Name), description: txt(t.Description),
		agentID: txt(t.AgentID), runnerID: txt(t.RunnerID), status: txt(string(t.Status)),
		currentStep: txt(string(t.CurrentStep)),
		createdAt:   dbTime(t.CreatedAt), updatedAt: dbTime(t.UpdatedAt),
		startedAt: dbTimePtr(t.StartedAt), completedAt: dbTimePtr(t.CompletedAt), cancelledAt: dbTimePtr(t.CancelledAt),
		cancelledBy: txt(t.CancelledBy), scheduleID: txt(t.ScheduleID),
	}
	var err error
	if r.progress, err = int32Of("progress", t.Progress); err != nil {
		return taskRow{}, fmt.Errorf("postgres store: task %s: %w", t.ID, err)
	}
	if r.stepsCompleted, err = int32Of("steps completed", t.StepsCompleted); err != nil {
		return taskRow{}, fmt.Errorf("postgres store: task %s: %w", t.ID, err)
	}
	if r.totalSteps, err = int32Of("total steps", t.TotalSteps); err != nil {
		return taskRow{}, fmt.Errorf("postgres store: task %s: %w", t.ID, err)
	}
	if r.metadata, err = metadataJSON(t.Metadata); err != nil {
		return taskRow{}, fmt.Errorf("postgres store: task %s: %w", t.ID, err)
	}
	if r.result, err = dbJSON(t.Result, t.Result == nil); err != nil {
		return taskRow{}, fmt.Errorf("postgres store: task %s: encode result: %w", t.ID, err)
	}
	return r, nil
}

const insertTaskSQL = `INSERT INTO tasks (` + store.TaskColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
	ON CONFLICT (id) DO NOTHING`

// CreateTask inserts t; an existing ID (in any org) makes it a no-op. An
// empty Status is stored as pending and a zero UpdatedAt as CreatedAt.
func (s *Store) CreateTask(ctx context.Context, t store.Task) error {
	r, err := rowOf(t)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, insertTaskSQL,
		r.id, r.org, r.name, r.description, r.agentID, r.runnerID, r.status, r.progress, r.metadata,
		r.currentStep, r.stepsCompleted, r.totalSteps, r.result,
		r.createdAt, r.updatedAt, r.startedAt, r.completedAt, r.cancelledAt, r.cancelledBy, r.scheduleID); err != nil {
		return fmt.Errorf("postgres store: create task %s: %w", t.ID, err)
	}
	return nil
}

// insertTasksSQL inserts the rows of column arrays. The JSON columns travel
// as text and are cast here.
const insertTasksSQL = `INSERT INTO tasks (` + store.TaskColumns + `)
	SELECT id, org, name, description, agent_id, runner_id, status, progress, metadata::json,
		current_step, steps_completed, total_steps, result::json,
		created_at, updated_at, started_at, completed_at, cancelled_at, cancelled_by, schedule_id
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::integer[], $9::text[], $10::text[], $11::integer[], $12::integer[], $13::text[],
		$14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[],
		$19::text[], $20::text[]) WITH ORDINALITY
		AS u (id, org, name, description, agent_id, runner_id, status,
			progress, metadata, current_step, steps_completed, total_steps, result,
			created_at, updated_at, started_at, completed_at, cancelled_at,
			cancelled_by, schedule_id, n)
	ORDER BY n
	ON CONFLICT (id) DO NOTHING`

// vacuumAfter is the size of a CreateTasks batch after which the tasks table
// is vacuumed and analyzed.
const vacuumAfter = 1000

// CreateTasks inserts tasks as CreateTask does, all in one statement: a bulk
// path for rebuilding the index from Temporal and for seeding tests. Either
// every task is stored (or already existed) or none is. Of tasks repeating an
// ID, the first is stored.
//
// After a batch of vacuumAfter tasks or more it vacuums and analyzes the
// table, as one does after a bulk load rather than wait for autovacuum (up to
// a minute by default). Until then the planner would plan lists for the table
// as it was before the load (a sort of every matching row rather than an
// index walk: hundreds of times slower), and index-only scans, which deep
// list offsets rely on, would read the table for every entry they skip
// (about three times slower).
func (s *Store) CreateTasks(ctx context.Context, tasks []store.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	rows := make([]taskRow, len(tasks))
	for i, t := range tasks {
		r, err := rowOf(t)
		if err != nil {
			return err
		}
		rows[i] = r
	}
	// Rows are inserted in ID order, so concurrent bulk inserts of
	// overlapping IDs wait for each other instead of deadlocking. The sort is
	// stable: of repeated IDs the first is inserted and the others skipped.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].id < rows[j].id })

	n := len(rows)
	var (
		id, org, name, desc, agent, runner, status = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		progress, steps, total = make([]int32, n), make([]int32, n), make([]int32, n)
		meta, result           = make([]*string, n), make([]*string, n)
		step, cancelledBy      = make([]string, n), make([]string, n)
		scheduleID             = make([]string, n)
		created, updated       = make([]time.Time, n), make([]time.Time, n)
		started, completed     = make([]*time.Time, n), make([]*time.Time, n)
		cancelled              = make([]*time.Time, n)
	)
	for i, r := range rows {
		id[i], org[i], name[i], desc[i], agent[i], runner[i], status[i] = r.id, r.org, r.name, r.description, r.agentID, r.runnerID, r.status
		progress[i], steps[i], total[i] = r.progress, r.stepsCompleted, r.totalSteps
		meta[i], result[i] = textOf(r.metadata), textOf(r.result)
		step[i], cancelledBy[i], scheduleID[i] = r.currentStep, r.cancelledBy, r.scheduleID
		created[i], updated[i] = r.createdAt, r.updatedAt
		started[i], completed[i], cancelled[i] = r.startedAt, r.completedAt, r.cancelledAt
	}
	args := []any{id, org, name, desc, agent, runner, status, progress, meta,
		step, steps, total, result,
		created, updated, started, completed, cancelled, cancelledBy, scheduleID}
	if n < vacuumAfter {
		if _, err := s.pool.Exec(ctx, insertTasksSQL, args...); err != nil {
			return fmt.Errorf("postgres store: create tasks: %w", err)
		}
		return nil
	}
	// A bulk load commits synchronously even on a server that commits
	// asynchronously (synchronous_commit = off): until the commit record is
	// flushed, no hint bits may be set on the new rows, so VACUUM could not
	// mark their pages all-visible.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertTasksSQL, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres store: create tasks: %w", err)
	}
	// Best effort: the tasks are stored, and autovacuum does the same later.
	// (Without ownership of the table VACUUM only warns.)
	_, _ = s.pool.Exec(ctx, `VACUUM (ANALYZE) tasks`)
	return nil
}

// textOf returns JSON bytes as a nullable string.
func textOf(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// applyTransitionSQL updates a task unless the transition is older than the
// row, and reports whether it did and whether the task exists. A concurrent
// transition of the same task is waited for, and the age check made against
// the row it left.
//
//	$1 status ('' keeps)       $2 status is terminal      $3 progress
//	$4 current step ('' keeps) $5 steps completed          $6 total steps (0 keeps)
//	$7 result JSON (NULL keeps) $8 updated_at              $9 started_at (NULL keeps)
//	$10 completed_at (NULL keeps) $11 cancelled_at (NULL keeps) $12 cancelled_by ('' keeps)
//	$13 id                     $14 approval JSON (NULL keeps) $15 plan summary JSON (NULL keeps)
//	$16 policy check JSON (NULL keeps)
const applyTransitionSQL = `WITH u AS (
	UPDATE tasks SET
		status = CASE
			WHEN $1::text = '' THEN status
			WHEN NOT $2::boolean AND status IN ('completed', 'failed', 'cancelled', 'rejected') THEN status
			ELSE $1::text END,
		progress        = greatest(progress, $3::integer),
		current_step    = CASE WHEN $4::text = '' THEN current_step ELSE $4::text END,
		steps_completed = greatest(steps_completed, $5::integer),
		total_steps     = CASE WHEN $6::integer = 0 THEN total_steps ELSE $6::integer END,
		result          = coalesce($7::json, result),
		updated_at      = $8::timestamptz,
		started_at      = coalesce($9::timestamptz, started_at),
		completed_at    = coalesce($10::timestamptz, completed_at),
		cancelled_at    = coalesce($11::timestamptz, cancelled_at),
		cancelled_by    = CASE WHEN $12::text = '' THEN cancelled_by ELSE $12::text END,
		approval        = coalesce($14::json, approval),
		plan_summary    = coalesce($15::json, plan_summary),
		policy          = coalesce($16::json, policy)
	WHERE id = $13::text AND updated_at <= $8::timestamptz
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM tasks WHERE id = $13::text)`

// transitionArgs are the arguments of applyTransitionSQL for tr (see its
// parameter list): ApplyTransition and RecordTransition share them.
func transitionArgs(tr store.Transition) ([]any, error) {
	result, err := dbJSON(tr.Result, tr.Result == nil)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	approval, err := dbJSON(tr.Approval, tr.Approval == nil)
	if err != nil {
		return nil, fmt.Errorf("encode approval: %w", err)
	}
	plan, err := dbJSON(tr.Plan, tr.Plan == nil)
	if err != nil {
		return nil, fmt.Errorf("encode plan summary: %w", err)
	}
	policy, err := dbJSON(tr.Policy, tr.Policy == nil)
	if err != nil {
		return nil, fmt.Errorf("encode policy check: %w", err)
	}
	var nums [3]int32
	for i, v := range []struct {
		field string
		v     int
	}{{"progress", tr.Progress}, {"steps completed", tr.StepsCompleted}, {"total steps", tr.TotalSteps}} {
		if nums[i], err = int32Of(v.field, v.v); err != nil {
			return nil, err
		}
	}
	return []any{
		txt(string(tr.Status)), tr.Status.Terminal(), nums[0],
		txt(string(tr.CurrentStep)), nums[1], nums[2],
		result, dbTime(tr.UpdatedAt), dbTimePtr(tr.StartedAt),
		dbTimePtr(tr.CompletedAt), dbTimePtr(tr.CancelledAt), txt(tr.CancelledBy),
		txt(tr.ID), textOf(approval), textOf(plan), textOf(policy),
	}, nil
}

// ApplyTransition updates a task's state. A transition whose UpdatedAt is
// before the stored one is ignored (nil is returned). Otherwise:
//   - Status replaces the stored one, except that an empty Status keeps it and
//     a terminal status (completed, failed, cancelled, rejected) is only ever replaced by
//     another terminal one;
//   - Progress and StepsCompleted never decrease;
//   - an empty CurrentStep or CancelledBy, a zero TotalSteps and nil
//     StartedAt, CompletedAt, CancelledAt, Result, Approval, Plan or Policy
//     keep the stored value;
//   - UpdatedAt is stored.
//
// It returns store.ErrNotFound if the task does not exist.
func (s *Store) ApplyTransition(ctx context.Context, tr store.Transition) error {
	if tr.ID == "" {
		return errors.New("postgres store: transition: task ID is required")
	}
	args, err := transitionArgs(tr)
	if err != nil {
		return fmt.Errorf("postgres store: transition of task %s: %w", tr.ID, err)
	}
	var updated, exists bool
	err = s.pool.QueryRow(ctx, applyTransitionSQL, args...).Scan(&updated, &exists)
	if err != nil {
		return fmt.Errorf("postgres store: transition of task %s: %w", tr.ID, err)
	}
	if !updated && !exists {
		return fmt.Errorf("postgres store: transition of task %s: %w", tr.ID, store.ErrNotFound)
	}
	return nil
}

const getTaskSQL = `SELECT ` + store.TaskReadColumns + ` FROM tasks WHERE id = $1 AND org = $2`

// GetTask returns the task id of org, or an error wrapping store.ErrNotFound
// when there is none (a task of another org is not found either).
func (s *Store) GetTask(ctx context.Context, org, id string) (store.Task, error) {
	rows, err := s.pool.Query(ctx, getTaskSQL, txt(id), txt(org))
	if err != nil {
		return store.Task{}, fmt.Errorf("postgres store: task %s: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return store.Task{}, fmt.Errorf("postgres store: task %s: %w", id, err)
		}
		return store.Task{}, fmt.Errorf("postgres store: task %s: %w", id, store.ErrNotFound)
	}
	t, err := scanTask(rows, nil)
	if err != nil {
		return store.Task{}, fmt.Errorf("postgres store: task %s: %w", id, err)
	}
	return t, nil
}

// scanTask reads a row of store.TaskReadColumns, preceded by a total when total is not
// nil. A row whose id is NULL (an outer join's empty side) only sets the
// total, and comes back as the zero Task.
func scanTask(rows pgx.Rows, total *int64) (store.Task, error) {
	var (
		t                                    store.Task
		status, step                         string
		progress, stepsCompleted, totalSteps int32
		meta, result, approval, plan, policy []byte
		started, completed, cancelled        pgtype.Timestamptz
		dest                                 [24]any
	)
	d := dest[:0]
	if total != nil {
		d = append(d, total)
		if rows.RawValues()[1] == nil {
			return store.Task{}, rows.Scan(append(d, make([]any, len(rows.FieldDescriptions())-1)...)...)
		}
	}
	d = append(d, &t.ID, &t.Org, &t.Name, &t.Description, &t.AgentID, &t.RunnerID, &status, &progress, &meta,
		&step, &stepsCompleted, &totalSteps, &result,
		&t.CreatedAt, &t.UpdatedAt, &started, &completed, &cancelled, &t.CancelledBy, &t.ScheduleID, &approval, &plan, &policy)
	if err := rows.Scan(d...); err != nil {
		return store.Task{}, err
	}
	if approval != nil {
		t.Approval = new(task.ApprovalState)
		if err := json.Unmarshal(approval, t.Approval); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode approval: %w", t.ID, err)
		}
	}
	if plan != nil {
		t.Plan = new(task.PlanSummary)
		if err := json.Unmarshal(plan, t.Plan); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode plan summary: %w", t.ID, err)
		}
	}
	if policy != nil {
		t.Policy = new(task.PolicyCheck)
		if err := json.Unmarshal(policy, t.Policy); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode policy check: %w", t.ID, err)
		}
	}
	t.Status, t.CurrentStep = task.Status(status), task.Step(step)
	t.Progress, t.StepsCompleted, t.TotalSteps = int(progress), int(stepsCompleted), int(totalSteps)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	t.StartedAt, t.CompletedAt, t.CancelledAt = goTime(started), goTime(completed), goTime(cancelled)
	var err error
	if t.Metadata, err = goMetadata(meta); err != nil {
		return store.Task{}, fmt.Errorf("task %s: %w", t.ID, err)
	}
	if result != nil {
		t.Result = new(task.Result)
		if err := json.Unmarshal(result, t.Result); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode result: %w", t.ID, err)
		}
	}
	return t, nil
}
