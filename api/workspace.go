package api

import "github.com/terratask/terratask/task"

// Workspace is a workspace as GET /api/v1/workspaces and
// /workspaces/{workspace} show it: the Terraform state tasks naming it
// share, and the agents that may use it. Agents lists the owner (the agent
// of the first task created on it) first, then the agents it was granted
// to; empty, it is unowned and the next agent's task claims it.
// LatestTask is the latest task created on it (null for none, or while the
// index does not hold it), StateSerial the serial of its latest state
// version (null: no state), Lock its state's lock (null: unlocked).
type Workspace struct {
	Name        string         `json:"name"`
	Agents      []string       `json:"agents"`
	CreatedAt   string         `json:"created_at"`
	CreatedBy   string         `json:"created_by"`
	UpdatedAt   string         `json:"updated_at"`
	UpdatedBy   string         `json:"updated_by"`
	LatestTask  *WorkspaceTask `json:"latest_task"`
	StateSerial *int64         `json:"state_serial"`
	Lock        *WorkspaceLock `json:"lock"`
}

// WorkspaceTask is a workspace's latest task.
type WorkspaceTask struct {
	ID     string      `json:"id"`
	Status task.Status `json:"status"`
}

// WorkspaceLock is who holds a workspace's state lock and since when: the
// lock ID, the task whose credential took it (empty for a key), and Who and
// Operation from Terraform's lock info.
type WorkspaceLock struct {
	ID        string `json:"id"`
	TaskID    string `json:"task_id,omitempty"`
	Who       string `json:"who,omitempty"`
	Operation string `json:"operation,omitempty"`
	CreatedAt string `json:"created_at"`
}

// WorkspaceAgents is the body of PUT /workspaces/{workspace}: the agents
// that may use the workspace, the owner first; it replaces the list.
type WorkspaceAgents struct {
	Agents []string `json:"agents"`
}
