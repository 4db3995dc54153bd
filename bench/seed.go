package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

// DevOrg is the org of the dev admin key.
const DevOrg = "default"

// Seeded is what SeedStore put into a data dir.
type Seeded struct {
	Tasks int
	Logs  int
	// Completed are IDs of seeded completed tasks: their GET is served from
	// the store alone, as for any finished task.
	Completed []string
	// LogTask is the seeded task that holds the log entries.
	LogTask string
	Took    time.Duration
}

// SeedStore writes tasks generated tasks of the dev org, and logs log entries
// for one of them, into DATA/terratask.db before `terratask dev` opens it,
// through the SQLite store's bulk paths (the store's own schema and
// migrations). The tasks are older than anything the benchmark creates.
func SeedStore(ctx context.Context, dataDir string, tasks, logs int) (Seeded, error) {
	start := time.Now()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "terratask.db"))
	if err != nil {
		return Seeded{}, err
	}
	defer st.Close()
	base := start.Add(-72 * time.Hour).UTC().Truncate(time.Second)
	gen := storetest.GenTasks(DevOrg, tasks, base)
	const batch = 25000
	for i := 0; i < len(gen); i += batch {
		if err := st.CreateTasks(ctx, gen[i:min(i+batch, len(gen))]); err != nil {
			return Seeded{}, fmt.Errorf("seeding tasks: %w", err)
		}
	}
	s := Seeded{Tasks: tasks, Logs: logs}
	for _, t := range gen {
		if t.Status == task.StatusCompleted {
			s.Completed = append(s.Completed, t.ID)
		}
	}
	if len(s.Completed) == 0 {
		return Seeded{}, fmt.Errorf("seeding: no completed task among %d", tasks)
	}
	s.LogTask = s.Completed[0]
	entries := storetest.GenLogs(s.LogTask, "run1/applying/attempt1", 1, logs, base)
	const logBatch = 1000
	for i := 0; i < len(entries); i += logBatch {
		if err := st.AppendLogs(ctx, entries[i:min(i+logBatch, len(entries))]); err != nil {
			return Seeded{}, fmt.Errorf("seeding logs: %w", err)
		}
	}
	s.Took = time.Since(start)
	return s, nil
}
