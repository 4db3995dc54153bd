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

// insertTasks inserts tasks; an existing ID is skipped.
var insertTasks = multiInsert{
	head:  `INSERT INTO tasks (` + store.TaskColumns + `)`,
	width: 20,
	tail:  ` ON CONFLICT (id) DO NOTHING`,
	sizes: []int{16, 4, 1},
}

// insertTaskSQL inserts one task.
var insertTaskSQL = insertTasks.sql(1)

// taskArgs validates t and returns insertTaskSQL's arguments. An empty status
// is pending; a zero UpdatedAt is CreatedAt.
func taskArgs(t store.Task) ([]any, error) {
	if t.ID == "" {
		return nil, errors.New("sqlite store: task ID is required")
	}
	if t.Org == "" {
		return nil, fmt.Errorf("sqlite store: task %s: org is required", t.ID)
	}
	if t.Status == "" {
		t.Status = task.StatusPending
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt
	}
	meta, err := metadataJSON(t.Metadata)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: task %s: %w", t.ID, err)
	}
	result, err := dbJSON(t.Result, t.Result == nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: task %s: encode result: %w", t.ID, err)
	}
	return []any{
		t.ID, t.Org, t.Name, t.Description, t.AgentID, t.RunnerID, string(t.Status), t.Progress, meta,
		string(t.CurrentStep), t.StepsCompleted, t.TotalSteps, result,
		dbTime(t.CreatedAt), dbTime(t.UpdatedAt), dbTimePtr(t.StartedAt), dbTimePtr(t.CompletedAt),
		dbTimePtr(t.CancelledAt), t.CancelledBy, t.ScheduleID,
	}, nil
}

// CreateTask inserts t; an existing ID (in any org) makes it a no-op. An
// empty Status is stored as pending and a zero UpdatedAt as CreatedAt.
func (s *Store) CreateTask(ctx context.Context, t store.Task) error {
	args, err := taskArgs(t)
	if err != nil {
		return err
	}
	if _, err := s.wst.exec(ctx, insertTaskSQL, args...); err != nil {
		return fmt.Errorf("sqlite store: create task %s: %w", t.ID, err)
	}
	return nil
}

// CreateTasks inserts tasks as CreateTask does, all in one transaction: a
// bulk path for rebuilding the index from Temporal and for seeding tests.
// Either every task is stored (or already existed) or none is.
func (s *Store) CreateTasks(ctx context.Context, tasks []store.Task) error {
	args := make([]any, 0, insertTasks.width*len(tasks))
	for _, t := range tasks {
		a, err := taskArgs(t)
		if err != nil {
			return err
		}
		args = append(args, a...)
	}
	if err := s.insertBatch(ctx, insertTasks, args); err != nil {
		return fmt.Errorf("sqlite store: create tasks: %w", err)
	}
	return nil
}

// applyTransitionSQL updates a task unless the transition is older than the
// row. Only columns a transition may change are assigned, so SQLite leaves the
// indexes without status or updated_at (agent, runner) untouched.
//
//	?1 status ('' keeps)     ?2 status is terminal (0/1)  ?3 progress
//	?4 current step ('' keeps) ?5 steps completed          ?6 total steps (0 keeps)
//	?7 result JSON (NULL keeps) ?8 updated_at              ?9 started_at (NULL keeps)
//	?10 completed_at (NULL keeps) ?11 cancelled_at (NULL keeps) ?12 cancelled_by ('' keeps)
//	?13 id                     ?14 approval JSON (NULL keeps) ?15 plan summary JSON (NULL keeps)
//	?16 policy check JSON (NULL keeps)
const applyTransitionSQL = `UPDATE tasks SET
	status = CASE
		WHEN ?1 = '' THEN status
		WHEN ?2 = 0 AND status IN ('completed', 'failed', 'cancelled', 'rejected') THEN status
		ELSE ?1 END,
	progress        = max(progress, ?3),
	current_step    = CASE WHEN ?4 = '' THEN current_step ELSE ?4 END,
	steps_completed = max(steps_completed, ?5),
	total_steps     = CASE WHEN ?6 = 0 THEN total_steps ELSE ?6 END,
	result          = coalesce(?7, result),
	updated_at      = ?8,
	started_at      = coalesce(?9, started_at),
	completed_at    = coalesce(?10, completed_at),
	cancelled_at    = coalesce(?11, cancelled_at),
	cancelled_by    = CASE WHEN ?12 = '' THEN cancelled_by ELSE ?12 END,
	approval        = coalesce(?14, approval),
	plan_summary    = coalesce(?15, plan_summary),
	policy          = coalesce(?16, policy)
WHERE id = ?13 AND updated_at <= ?8`

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
	terminal := 0
	if tr.Status.Terminal() {
		terminal = 1
	}
	return []any{
		string(tr.Status), terminal, tr.Progress,
		string(tr.CurrentStep), tr.StepsCompleted, tr.TotalSteps,
		result, dbTime(tr.UpdatedAt), dbTimePtr(tr.StartedAt),
		dbTimePtr(tr.CompletedAt), dbTimePtr(tr.CancelledAt), tr.CancelledBy,
		tr.ID, approval, plan, policy,
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
		return errors.New("sqlite store: transition: task ID is required")
	}
	args, err := transitionArgs(tr)
	if err != nil {
		return fmt.Errorf("sqlite store: transition of task %s: %w", tr.ID, err)
	}
	res, err := s.wst.exec(ctx, applyTransitionSQL, args...)
	if err != nil {
		return fmt.Errorf("sqlite store: transition of task %s: %w", tr.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite store: transition of task %s: %w", tr.ID, err)
	}
	if n > 0 {
		return nil
	}
	// Nothing updated: the transition was stale, or there is no such task.
	var one int
	err = s.wst.queryRow(ctx, `SELECT 1 FROM tasks WHERE id = ?`, []any{tr.ID},
		func(r *sql.Row) error { return r.Scan(&one) })
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite store: transition of task %s: %w", tr.ID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite store: transition of task %s: %w", tr.ID, err)
	}
	return nil
}

const getTaskSQL = `SELECT ` + store.TaskReadColumns + ` FROM tasks WHERE id = ? AND org = ?`

// GetTask returns the task id of org, or an error wrapping store.ErrNotFound
// when there is none (a task of another org is not found either).
func (s *Store) GetTask(ctx context.Context, org, id string) (store.Task, error) {
	var t store.Task
	err := s.rst.queryRow(ctx, getTaskSQL, []any{id, org}, func(r *sql.Row) (err error) {
		t, err = scanTask(r)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Task{}, fmt.Errorf("sqlite store: task %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Task{}, fmt.Errorf("sqlite store: task %s: %w", id, err)
	}
	return t, nil
}

// sortColumns maps a sort field to its column.
var sortColumns = map[store.SortField]string{
	"":                  "created_at",
	store.SortCreatedAt: "created_at",
	store.SortUpdatedAt: "updated_at",
	store.SortStatus:    "status",
}

// listTasksSQL validates q and returns the statements of its page and of
// its count, and the arguments of the count; the page takes q.Limit and
// q.Offset after them.
func listTasksSQL(q store.TaskQuery) (page, count string, args []any, err error) {
	col, ok := sortColumns[q.Sort]
	if !ok {
		return "", "", nil, fmt.Errorf("unknown sort field %q", q.Sort)
	}
	if q.Limit <= 0 {
		return "", "", nil, fmt.Errorf("limit must be positive, got %d", q.Limit)
	}
	if q.Offset < 0 {
		return "", "", nil, fmt.Errorf("offset must not be negative, got %d", q.Offset)
	}

	var where strings.Builder
	args = []any{q.Org}
	where.WriteString(`org = ?`)
	statuses := sqlkit.Dedupe(q.Status)
	switch len(statuses) {
	case 0:
	case 1:
		where.WriteString(` AND status = ?`)
		args = append(args, string(statuses[0]))
	default:
		where.WriteString(` AND status IN (?` + strings.Repeat(`, ?`, len(statuses)-1) + `)`)
		for _, st := range statuses {
			args = append(args, string(st))
		}
	}
	if q.AgentID != "" {
		where.WriteString(` AND agent_id = ?`)
		args = append(args, q.AgentID)
	}
	if q.RunnerID != "" {
		where.WriteString(` AND runner_id = ?`)
		args = append(args, q.RunnerID)
	}
	if q.ScheduleID != "" {
		// The literal lets the planner use the partial index of
		// scheduled tasks.
		where.WriteString(` AND schedule_id = ? AND schedule_id <> ''`)
		args = append(args, q.ScheduleID)
	}
	dir := "ASC"
	if q.Descending {
		dir = "DESC"
	}
	// The subquery walks an index to the page's rowids, so rows skipped by
	// the offset are never read from the table; the join then reads only
	// the page's rows, in the subquery's order.
	page = `SELECT ` + store.TaskColumnsOf("t") + ` FROM (SELECT rowid AS rid, ` + col + ` AS k, id FROM tasks WHERE ` +
		where.String() + ` ORDER BY ` + col + ` ` + dir + `, id ` + dir + ` LIMIT ? OFFSET ?) AS p` +
		` CROSS JOIN tasks AS t ON t.rowid = p.rid ORDER BY p.k ` + dir + `, p.id ` + dir
	// task_counts has the filter columns of tasks, so the same condition
	// sums the matching counts; it has no schedule, whose tasks are
	// counted in the index of scheduled tasks.
	count = `SELECT coalesce(sum(n), 0) FROM task_counts WHERE ` + where.String()
	if q.ScheduleID != "" {
		count = `SELECT count(*) FROM tasks WHERE ` + where.String()
	}
	return page, count, args, nil
}

// ListTasks returns a page of q.Org's tasks matching q's filters, ordered by
// q.Sort then ID (both descending when q.Descending), and the number of
// matching tasks. q.Limit must be positive, q.Offset not negative and q.Sort
// empty (created_at) or a known field. The page and the count come from one
// snapshot of the database.
func (s *Store) ListTasks(ctx context.Context, q store.TaskQuery) ([]store.Task, int, error) {
	page, count, args, err := listTasksSQL(q)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
	}
	pageStmt, releasePage, err := s.rst.get(ctx, page)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
	}
	defer releasePage()
	countStmt, releaseCount, err := s.rst.get(ctx, count)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
	}
	defer releaseCount()

	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only

	rows, err := tx.StmtContext(ctx, pageStmt).QueryContext(ctx, append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
	}
	tasks := make([]store.Task, 0, min(q.Limit, 1000))
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
		}
		tasks = append(tasks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite store: list tasks: %w", err)
	}
	rows.Close()

	// A short, non-empty page (or an empty first page) is the end: the total
	// follows without counting.
	if len(tasks) < q.Limit && (len(tasks) > 0 || q.Offset == 0) {
		return tasks, q.Offset + len(tasks), nil
	}
	var total int
	if err := tx.StmtContext(ctx, countStmt).QueryRowContext(ctx, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("sqlite store: count tasks: %w", err)
	}
	return tasks, total, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanTask reads a row of store.TaskReadColumns.
func scanTask(sc scanner) (store.Task, error) {
	var (
		t                                    store.Task
		status, step                         string
		meta, result, approval, plan, policy sql.NullString
		created, updated                     int64
		started, completed, cancelledTime    sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Org, &t.Name, &t.Description, &t.AgentID, &t.RunnerID, &status, &t.Progress, &meta,
		&step, &t.StepsCompleted, &t.TotalSteps, &result,
		&created, &updated, &started, &completed, &cancelledTime, &t.CancelledBy, &t.ScheduleID, &approval, &plan, &policy); err != nil {
		return store.Task{}, err
	}
	if approval.Valid {
		t.Approval = new(task.ApprovalState)
		if err := json.Unmarshal([]byte(approval.String), t.Approval); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode approval: %w", t.ID, err)
		}
	}
	if plan.Valid {
		t.Plan = new(task.PlanSummary)
		if err := json.Unmarshal([]byte(plan.String), t.Plan); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode plan summary: %w", t.ID, err)
		}
	}
	if policy.Valid {
		t.Policy = new(task.PolicyCheck)
		if err := json.Unmarshal([]byte(policy.String), t.Policy); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode policy check: %w", t.ID, err)
		}
	}
	t.Status = task.Status(status)
	t.CurrentStep = task.Step(step)
	t.CreatedAt = goTime(created)
	t.UpdatedAt = goTime(updated)
	t.StartedAt = goTimePtr(started)
	t.CompletedAt = goTimePtr(completed)
	t.CancelledAt = goTimePtr(cancelledTime)
	var err error
	if t.Metadata, err = goMetadata(meta); err != nil {
		return store.Task{}, fmt.Errorf("task %s: %w", t.ID, err)
	}
	if result.Valid {
		t.Result = new(task.Result)
		if err := json.Unmarshal([]byte(result.String), t.Result); err != nil {
			return store.Task{}, fmt.Errorf("task %s: decode result: %w", t.ID, err)
		}
	}
	return t, nil
}
