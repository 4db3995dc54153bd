package server

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/schedules"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// scheduleView renders a schedule's index row (the list view).
func scheduleView(row store.Schedule, def schedules.Definition) api.Schedule {
	v := api.Schedule{
		ID: row.ID, Name: def.Name, Kind: string(def.Kind), TimeZone: def.TimeZone, Paused: def.Paused,
		Overlap: string(def.Overlap), Template: def.Template, CreatedAt: api.Time(row.CreatedAt),
		UpdatedAt: api.Time(row.UpdatedAt), CreatedBy: row.CreatedBy, Jitter: time.Duration(def.Jitter).String(),
	}
	if v.TimeZone == "" {
		v.TimeZone = "UTC"
	}
	if def.Cron != "" {
		c := def.Cron
		v.Cron = &c
	} else {
		i := time.Duration(def.Interval).String()
		v.Interval = &i
	}
	return v
}

// scheduleDetail is the detail view: the row, what Temporal says of the
// schedule now (pause state, next and recent runs) and, for a drift
// schedule, whether its latest completed task found drift. What cannot be
// read is left out (and logged): the row alone still answers.
func (s *Server) scheduleDetail(ctx context.Context, row store.Schedule, def schedules.Definition) api.Schedule {
	v := scheduleView(row, def)
	v.NextRuns, v.RecentRuns, v.Running = []string{}, []api.ScheduleRun{}, []string{}
	info, err := s.schedules().Describe(ctx, row.ID)
	switch {
	case errors.Is(err, schedules.ErrNotFound):
		v.Note = "Temporal no longer has this schedule (deleted outside the API): nothing runs; delete it here too"
	case err != nil:
		s.opts.Logger.Warn("describing a Temporal schedule", zap.String("schedule_id", row.ID), zap.Error(err))
	default:
		v.Paused, v.Note = info.Paused, info.Note
		for _, t := range info.Next {
			v.NextRuns = append(v.NextRuns, api.Time(t))
		}
		for _, r := range info.Recent {
			run := api.ScheduleRun{TaskID: r.TaskID, ScheduledAt: api.Time(r.ScheduledAt), StartedAt: api.Time(r.StartedAt)}
			if t, err := s.opts.Store.GetTask(ctx, row.Org, r.TaskID); err == nil {
				run.Status = t.Status
			}
			v.RecentRuns = append(v.RecentRuns, run)
		}
		v.Running = append(v.Running, info.Running...)
	}
	if def.Kind == schedules.KindDrift {
		tasks, _, err := s.opts.Store.ListTasks(ctx, store.TaskQuery{Org: row.Org, ScheduleID: row.ID,
			Status: []task.Status{task.StatusCompleted}, Sort: store.SortCreatedAt, Descending: true, Limit: 1})
		if err != nil {
			s.opts.Logger.Warn("reading a drift schedule's latest task", zap.String("schedule_id", row.ID), zap.Error(err))
		} else if len(tasks) == 1 && tasks[0].Result != nil && tasks[0].Result.Drift != nil {
			drifted := tasks[0].Result.Drift.Drifted
			v.Drifted, v.DriftTaskID = &drifted, tasks[0].ID
		}
	}
	return v
}
