package postgres

import (
	"context"
	"fmt"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TaskCounts sums the counts the triggers keep in task_counts over every org.
func (s *Store) TaskCounts(ctx context.Context) ([]store.RunnerStat, error) {
	rows, err := s.pool.Query(ctx, `SELECT runner_id, status, SUM(n)::bigint FROM task_counts
		WHERE n > 0 GROUP BY runner_id, status ORDER BY runner_id, status`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: task counts: %w", err)
	}
	defer rows.Close()
	var out []store.RunnerStat
	for rows.Next() {
		var st store.RunnerStat
		var status string
		var n int64
		if err := rows.Scan(&st.RunnerID, &status, &n); err != nil {
			return nil, fmt.Errorf("postgres store: task counts: %w", err)
		}
		st.Status, st.Tasks = task.Status(status), int(n)
		out = append(out, st)
	}
	return out, rows.Err()
}
