package devserver

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
)

// Temporal's SQLite visibility schema indexes every search attribute
// column, about 60 indexes on executions_visibility, and every visibility
// write (a workflow's start, each search attribute upsert, its close)
// replaces the row and so updates each of them: in a profile of dev running
// tasks, a tenth of its CPU. A dev server queries few of them: the Web UI's
// default list and its filters by workflow ID, type, status and task queue,
// parent and root workflow (child workflows), schedules (the scheduler's
// namespace division and scheduled-by ID), and the custom keyword search
// attributes (terratask's). Only those are kept; the others are not
// created, and dropped from a database made before. A query by a column
// without an index still works: it reads the table, which on a dev server
// is small.

// keptVisibilityIndexes are the visibility indexes a dev server keeps.
var keptVisibilityIndexes = map[string]bool{
	"default_idx": true, "by_execution_time": true, "by_workflow_id": true, "by_workflow_type": true,
	"by_status": true, "by_task_queue": true, "by_parent_workflow_id": true, "by_root_workflow_id": true,
	"by_temporal_namespace_division": true, "by_temporal_scheduled_by_id": true, "by_temporal_scheduled_start_time": true,
	"by_keyword_01": true, "by_keyword_02": true, "by_keyword_03": true, "by_keyword_04": true, "by_keyword_05": true,
	"by_keyword_06": true, "by_keyword_07": true, "by_keyword_08": true, "by_keyword_09": true, "by_keyword_10": true,
}

var visibilityIndexRE = regexp.MustCompile(`(?is)^\s*CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?["\x60]?([A-Za-z_][A-Za-z0-9_]*)["\x60]?\s+ON\s+["\x60]?executions_visibility\b`)

// droppedVisibilityIndex returns the name of the visibility index stmt
// creates when a dev server does without it, else "".
func droppedVisibilityIndex(stmt string) string {
	m := visibilityIndexRE.FindStringSubmatch(stmt)
	if m == nil || keptVisibilityIndexes[m[1]] {
		return ""
	}
	return m[1]
}

// dropVisibilityIndexes drops the indexes a dev server does without from
// a database made with them.
func dropVisibilityIndexes(ctx context.Context, db *sql.DB, stmts []string) error {
	for _, s := range stmts {
		if name := droppedVisibilityIndex(s); name != "" {
			if _, err := db.ExecContext(ctx, "DROP INDEX IF EXISTS "+name); err != nil {
				return fmt.Errorf("dropping visibility index %s: %w", name, err)
			}
		}
	}
	return nil
}
