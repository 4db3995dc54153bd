package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// queryPlan returns the EXPLAIN QUERY PLAN lines of a statement.
func queryPlan(t *testing.T, s *Store, query string, args []any) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestQueryPlans checks the statements ListTasks and ListLogs build: a page
// walks an index in order to its rows (no sort, no table read for rows the
// offset skips) for the filter and sort pairs the API serves most, every
// filter combination reads the page's rowids from a covering index, and totals
// come from task_counts.
func TestQueryPlans(t *testing.T) {
	s := openTest(t)
	running := []task.Status{task.StatusRunning}
	for _, c := range []struct {
		name   string
		q      store.TaskQuery
		sorted bool // may sort a filtered subset
	}{
		{"created", store.TaskQuery{}, false},
		{"created asc", store.TaskQuery{Descending: false}, false},
		{"updated", store.TaskQuery{Sort: store.SortUpdatedAt}, false},
		{"status", store.TaskQuery{Sort: store.SortStatus}, false},
		{"status filter/created", store.TaskQuery{Status: running}, false},
		{"status filter/updated", store.TaskQuery{Status: running, Sort: store.SortUpdatedAt}, false},
		{"status filter/status", store.TaskQuery{Status: running, Sort: store.SortStatus}, false},
		{"agent/created", store.TaskQuery{AgentID: "a"}, false},
		{"runner/created", store.TaskQuery{RunnerID: "r"}, false},
		{"statuses/created", store.TaskQuery{Status: []task.Status{task.StatusPending, task.StatusFailed}}, true},
		{"agent/updated", store.TaskQuery{AgentID: "a", Sort: store.SortUpdatedAt}, true},
		{"agent/status", store.TaskQuery{AgentID: "a", Sort: store.SortStatus}, true},
		{"runner/updated", store.TaskQuery{RunnerID: "r", Sort: store.SortUpdatedAt}, true},
		{"all filters/status", store.TaskQuery{Status: running, AgentID: "a", RunnerID: "r", Sort: store.SortStatus}, true},
	} {
		for _, desc := range []bool{false, true} {
			q := c.q
			q.Org, q.Limit, q.Offset, q.Descending = "o", 50, 100, desc
			page, count, args, err := listTasksSQL(q)
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(queryPlan(t, s, page, append(args, q.Limit, q.Offset)), "; ")
			t.Logf("%s desc=%v: %s", c.name, desc, plan)
			if !strings.Contains(plan, "SEARCH tasks USING COVERING INDEX") {
				t.Errorf("%s desc=%v: page rowids not read from a covering index: %s", c.name, desc, plan)
			}
			if !c.sorted && strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("%s desc=%v: page sorts: %s", c.name, desc, plan)
			}
			if !strings.Contains(plan, "SEARCH t USING INTEGER PRIMARY KEY") {
				t.Errorf("%s desc=%v: page rows not read by rowid: %s", c.name, desc, plan)
			}
			if cp := strings.Join(queryPlan(t, s, count, args), "; "); !strings.Contains(cp, "SEARCH task_counts USING PRIMARY KEY (org=?") {
				t.Errorf("%s: count does not read task_counts by org: %s", c.name, cp)
			}
		}
	}

	since := time.Unix(0, 0)
	for _, c := range []struct {
		name  string
		q     store.LogQuery
		index string
	}{
		{"all", store.LogQuery{}, "logs_task "},
		{"one level", store.LogQuery{Levels: []task.Level{task.LevelError}}, "logs_task_level "},
		{"since", store.LogQuery{Since: &since}, "logs_task "},
	} {
		q := c.q
		q.TaskID, q.Limit = "t", 100
		query, args, err := listLogsSQL(q)
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(queryPlan(t, s, query, args), "; ")
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan+" ", "INDEX "+c.index) {
			t.Errorf("logs %s: plan %s, want %s without a sort", c.name, plan, c.index)
		}
	}
	// Several levels: each level walks the level index; only the merge of
	// at most levels x limit rows sorts.
	query, args, err := listLogsSQL(store.LogQuery{TaskID: "t", Limit: 100,
		Levels: []task.Level{task.LevelWarn, task.LevelError}})
	if err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s, query, args)
	t.Logf("logs warn,error: %s", strings.Join(plan, "; "))
	n := 0
	for _, line := range plan {
		if strings.Contains(line, "INDEX logs_task_level ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("logs warn,error: plan %q, want the level index searched twice", plan)
	}
}
