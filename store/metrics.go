package store

import "context"

// TaskCounter reads task counts over every org, for the metrics the API
// exports (terratask_tasks by status and runner). The SQL stores read them
// from the per-(org, status, agent, runner) counts their triggers keep, so
// the cost follows the number of those combinations, not of tasks.
type TaskCounter interface {
	// TaskCounts returns the number of tasks per runner and status over all
	// orgs, ordered by runner then status, without zero counts.
	TaskCounts(ctx context.Context) ([]RunnerStat, error)
}
