package controlplane

import (
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/task"
)

// observeRecord records what a transition tells the metrics: the event it
// emits, how long a task waited for its runner (at its first pick-up), and
// how long a task took (when it ended). Record runs once per transition
// (a local activity; replays do not run it again), so each is counted once
// unless the activity is retried after it had written.
func observeRecord(r Record) {
	if r.Event == "" {
		return
	}
	metrics.TaskEvent(r.Event)
	tr := r.Transition
	switch {
	case r.Event == task.EventTaskRunning && tr.StartedAt != nil && !r.Task.CreatedAt.IsZero():
		metrics.ObserveTaskPickedUp(tr.StartedAt.Sub(r.Task.CreatedAt))
	case tr.Status.Terminal() && r.Event == task.EventForStatus(tr.Status) && tr.CompletedAt != nil && !r.Task.CreatedAt.IsZero():
		metrics.ObserveTaskEnded(tr.Status, tr.CompletedAt.Sub(r.Task.CreatedAt))
	}
}
