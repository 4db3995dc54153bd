package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
)

// deferredJoinFactor sets the offset, in pages, from which a list page reads
// the IDs of its rows first and then looks the rows up: skipping that many
// index entries without reading their rows saves more than looking up a
// page of rows by ID costs.
var deferredJoinFactor = 10

// sortColumns maps a sort field to its column.
var sortColumns = map[store.SortField]string{
	"":                  "created_at",
	store.SortCreatedAt: "created_at",
	store.SortUpdatedAt: "updated_at",
	store.SortStatus:    "status",
}

// listTasksSQL validates q and returns the statement of its page and total,
// and the statement's arguments.
//
// The total is a sum over task_counts, which has the filter columns of
// tasks, so the same condition selects the counts to add. It is the first
// column of every row; the page's rows are left-joined to it, so a page past
// the end is one row holding the total and NULL task columns.
func listTasksSQL(q store.TaskQuery) (string, []any, error) {
	col, ok := sortColumns[q.Sort]
	if !ok {
		return "", nil, fmt.Errorf("unknown sort field %q", q.Sort)
	}
	if q.Limit <= 0 {
		return "", nil, fmt.Errorf("limit must be positive, got %d", q.Limit)
	}
	if q.Offset < 0 {
		return "", nil, fmt.Errorf("offset must not be negative, got %d", q.Offset)
	}

	var where strings.Builder
	args := []any{txt(q.Org)}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where.WriteString(`org = $1`)
	statuses := sqlkit.Dedupe(q.Status)
	switch len(statuses) {
	case 0:
	case 1:
		where.WriteString(` AND status = ` + param(txt(string(statuses[0]))))
	default:
		ps := make([]string, len(statuses))
		for i, st := range statuses {
			ps[i] = param(txt(string(st)))
		}
		where.WriteString(` AND status IN (` + strings.Join(ps, ", ") + `)`)
	}
	if q.AgentID != "" {
		where.WriteString(` AND agent_id = ` + param(txt(q.AgentID)))
	}
	if q.RunnerID != "" {
		where.WriteString(` AND runner_id = ` + param(txt(q.RunnerID)))
	}
	if q.ScheduleID != "" {
		// The literal lets the planner use the partial index of
		// scheduled tasks.
		where.WriteString(` AND schedule_id = ` + param(txt(q.ScheduleID)) + ` AND schedule_id <> ''`)
	}
	dir := "ASC"
	if q.Descending {
		dir = "DESC"
	}
	limit, offset := param(int64(q.Limit)), param(int64(q.Offset))
	total := `SELECT coalesce(sum(n), 0)::bigint AS total FROM task_counts WHERE ` + where.String()
	if q.ScheduleID != "" {
		// task_counts has no schedule: count the scheduled tasks' index.
		total = `SELECT count(*)::bigint AS total FROM tasks WHERE ` + where.String()
	}
	order := ` ORDER BY ` + col + ` ` + dir + `, id ` + dir + ` LIMIT ` + limit + ` OFFSET ` + offset
	var page string
	if q.Offset < deferredJoinFactor*q.Limit {
		// The rows come straight from an index walk.
		page = `SELECT c.total, t.* FROM (` + total + `) AS c
LEFT JOIN LATERAL (SELECT ` + store.TaskReadColumns + ` FROM tasks WHERE ` + where.String() + order + `) AS t ON true
ORDER BY t.` + col + ` ` + dir + `, t.id ` + dir
	} else {
		// The inner query walks an index to the page's IDs without reading
		// the rows the offset skips (an index-only scan); the join then reads
		// only the page's rows.
		page = `SELECT c.total, t.* FROM (` + total + `) AS c
LEFT JOIN (SELECT id FROM tasks WHERE ` + where.String() + order + `) AS p ON true
LEFT JOIN LATERAL (SELECT ` + store.TaskReadColumns + ` FROM tasks WHERE id = p.id LIMIT 1) AS t ON true
ORDER BY t.` + col + ` ` + dir + `, t.id ` + dir
	}
	return page, args, nil
}

// ListTasks returns a page of q.Org's tasks matching q's filters, ordered by
// q.Sort then ID (both descending when q.Descending, bytewise for text), and
// the number of matching tasks. q.Limit must be positive, q.Offset not
// negative and q.Sort empty (created_at) or a known field. The page and the
// total come from one statement, so one snapshot.
func (s *Store) ListTasks(ctx context.Context, q store.TaskQuery) ([]store.Task, int, error) {
	query, args, err := listTasksSQL(q)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres store: list tasks: %w", err)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres store: list tasks: %w", err)
	}
	defer rows.Close()
	var (
		total int64
		tasks = make([]store.Task, 0, min(q.Limit, 1000))
	)
	for rows.Next() {
		t, err := scanTask(rows, &total)
		if err != nil {
			return nil, 0, fmt.Errorf("postgres store: list tasks: %w", err)
		}
		if t.ID != "" {
			tasks = append(tasks, t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres store: list tasks: %w", err)
	}
	return tasks, int(total), nil
}
