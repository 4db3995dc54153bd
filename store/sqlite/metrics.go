package sqlite

import (
	"context"
	"fmt"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TaskCounts sums the counts the triggers keep in task_counts over every org.
func (s *Store) TaskCounts(ctx context.Context) ([]store.RunnerStat, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT runner_id, status, SUM(n) FROM task_counts
		WHERE n > 0 GROUP BY runner_id, status ORDER BY runner_id, status`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: task counts: %w", err)
	}
	defer rows.Close()
	var out []store.RunnerStat
	for rows.Next() {
		var st store.RunnerStat
		var status string
		if err := rows.Scan(&st.RunnerID, &status, &st.Tasks); err != nil {
			return nil, fmt.Errorf("sqlite store: task counts: %w", err)
		}
		st.Status = task.Status(status)
		out = append(out, st)
	}
	return out, rows.Err()
}
