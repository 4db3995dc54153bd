package task

import "time"

// WorkspaceWorkflowType is the workflow that queues the tasks of one
// (org, workspace): one runs at a time, in creation order.
const WorkspaceWorkflowType = "terratask.WorkspaceQueue"

// Signals of the workspace queue.
const (
	SignalWorkspaceAcquire = "workspace-acquire" // WorkspaceRequest, to the queue
	SignalWorkspaceRelease = "workspace-release" // WorkspaceRequest, to the queue
	SignalWorkspaceGranted = "workspace-granted" // string (queue ID), to the task
)

// WorkspaceRequest asks a workspace queue for its turn, or gives it back.
type WorkspaceRequest struct {
	TaskID    string    `json:"task_id"`
	CreatedAt time.Time `json:"created_at"`
}

// WorkspaceQueueID is the workflow ID of the queue of (org, workspace).
func WorkspaceQueueID(org, workspace string) string {
	return "terratask-workspace/" + org + "/" + workspace
}

// SharesWorkspace reports whether the task's state may be shared with other
// tasks, so it must queue: a task on its own default workspace never waits.
func (in Input) SharesWorkspace() bool {
	return in.Params.Workspace != "" && in.Params.Workspace != in.ID
}
