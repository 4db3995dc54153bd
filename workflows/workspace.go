package workflows

import (
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/task"
)

// QueueState is the workspace queue's state, carried across continue-as-new.
type QueueState struct {
	Holder  *task.WorkspaceRequest  `json:"holder,omitempty"`
	Waiting []task.WorkspaceRequest `json:"waiting,omitempty"`
}

// holderCheckEvery is how often the queue checks that its holder's workflow
// is still open, so a task terminated outside terratask cannot block its
// workspace for ever.
const holderCheckEvery = time.Minute

// maxQueueHistory bounds a queue run's history before it continues as new.
const maxQueueHistory = 2000

// WorkspaceQueue serialises the tasks of one (org, workspace): it grants the
// workspace to one task at a time, the earliest created first, and moves on
// when that task releases it (or its workflow is gone). It ends when idle;
// the next task starts it again with SignalWithStart.
func WorkspaceQueue(ctx workflow.Context, st QueueState) error {
	acquire := workflow.GetSignalChannel(ctx, task.SignalWorkspaceAcquire)
	release := workflow.GetSignalChannel(ctx, task.SignalWorkspaceRelease)
	q := &queue{st: st, id: workflow.GetInfo(ctx).WorkflowExecution.ID}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	for {
		q.grant(ctx)
		if q.st.Holder == nil && len(q.st.Waiting) == 0 {
			// Idle: take what has arrived meanwhile, else finish.
			if !q.drain(ctx, acquire, release) {
				return nil
			}
			continue
		}
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > maxQueueHistory {
			q.drain(ctx, acquire, release)
			return workflow.NewContinueAsNewError(ctx, task.WorkspaceWorkflowType, q.st)
		}
		tctx, stopTimer := workflow.WithCancel(ctx)
		check := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(acquire, func(c workflow.ReceiveChannel, _ bool) {
			var r task.WorkspaceRequest
			c.Receive(ctx, &r)
			q.add(ctx, r)
		})
		sel.AddReceive(release, func(c workflow.ReceiveChannel, _ bool) {
			var r task.WorkspaceRequest
			c.Receive(ctx, &r)
			q.remove(r.TaskID)
		})
		if q.st.Holder != nil {
			sel.AddFuture(workflow.NewTimer(tctx, holderCheckEvery), func(workflow.Future) { check = true })
		}
		sel.Select(ctx)
		stopTimer()
		if check && q.st.Holder != nil {
			var open bool
			if err := workflow.ExecuteLocalActivity(lctx, controlplane.NameTaskOpen, q.st.Holder.TaskID).Get(ctx, &open); err == nil && !open {
				q.remove(q.st.Holder.TaskID)
			}
		}
	}
}

type queue struct {
	id string
	st QueueState
}

// drain takes every pending signal without blocking; it reports whether any
// arrived.
func (q *queue) drain(ctx workflow.Context, acquire, release workflow.ReceiveChannel) bool {
	got := false
	for {
		var r task.WorkspaceRequest
		if acquire.ReceiveAsync(&r) {
			q.add(ctx, r)
			got = true
			continue
		}
		if release.ReceiveAsync(&r) {
			q.remove(r.TaskID)
			got = true
			continue
		}
		return got
	}
}

func (q *queue) add(ctx workflow.Context, r task.WorkspaceRequest) {
	if q.st.Holder != nil && q.st.Holder.TaskID == r.TaskID {
		// A repeated acquire of the holder (a retried activity): it keeps
		// its turn and hears so again.
		_ = workflow.SignalExternalWorkflow(ctx, r.TaskID, "", task.SignalWorkspaceGranted, q.id).Get(ctx, nil)
		return
	}
	for _, w := range q.st.Waiting {
		if w.TaskID == r.TaskID {
			return
		}
	}
	q.st.Waiting = append(q.st.Waiting, r)
}

func (q *queue) remove(taskID string) {
	if q.st.Holder != nil && q.st.Holder.TaskID == taskID {
		q.st.Holder = nil
		return
	}
	for i, w := range q.st.Waiting {
		if w.TaskID == taskID {
			q.st.Waiting = append(q.st.Waiting[:i], q.st.Waiting[i+1:]...)
			return
		}
	}
}

// grant gives the workspace to the earliest created waiter when it is free.
// A waiter whose workflow is gone is skipped.
func (q *queue) grant(ctx workflow.Context) {
	for q.st.Holder == nil && len(q.st.Waiting) > 0 {
		sort.SliceStable(q.st.Waiting, func(i, j int) bool {
			a, b := q.st.Waiting[i], q.st.Waiting[j]
			if !a.CreatedAt.Equal(b.CreatedAt) {
				return a.CreatedAt.Before(b.CreatedAt)
			}
			return a.TaskID < b.TaskID
		})
		next := q.st.Waiting[0]
		q.st.Waiting = q.st.Waiting[1:]
		err := workflow.SignalExternalWorkflow(ctx, next.TaskID, "", task.SignalWorkspaceGranted, q.id).Get(ctx, nil)
		if err == nil {
			q.st.Holder = &next
		}
	}
}
