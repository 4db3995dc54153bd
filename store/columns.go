package store

import "strings"

// TaskColumns is the column list of the task index that every SQL
// implementation selects, in one order shared by their row scanners.
const TaskColumns = `id, org, name, description, agent_id, runner_id, status, progress, metadata,
	current_step, steps_completed, total_steps, result,
	created_at, updated_at, started_at, completed_at, cancelled_at, cancelled_by`

// TaskColumnsOf is TaskColumns qualified by a table alias.
func TaskColumnsOf(alias string) string {
	cols := strings.Split(TaskColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
