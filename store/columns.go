package store

import "strings"

// TaskColumns is the column list of the task index that every SQL
// implementation selects, in one order shared by their row scanners.
const TaskColumns = `id, org, name, description, agent_id, runner_id, status, progress, metadata,
	current_step, steps_completed, total_steps, result,
	created_at, updated_at, started_at, completed_at, cancelled_at, cancelled_by, schedule_id`

// TaskReadColumns is the column list reads select: TaskColumns (which
// inserts write) and the columns only transitions write: the review of the
// task's plan (JSON of task.ApprovalState), its plan's counts (JSON of
// task.PlanSummary) and its latest policy check (JSON of
// task.PolicyCheck), each NULL until set.
const TaskReadColumns = TaskColumns + `, approval, plan_summary, policy`

// TaskColumnsOf is TaskReadColumns qualified by a table alias.
func TaskColumnsOf(alias string) string {
	cols := strings.Split(TaskReadColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
