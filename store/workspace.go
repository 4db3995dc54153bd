package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/terratask/terratask/task"
)

// ErrNotGranted is returned by ClaimWorkspace when the claim's agent may not
// use the workspace: it belongs to other agents.
var ErrNotGranted = errors.New("workspace not granted to the agent")

// Workspace is a workspace of an org: the name a task's `workspace`
// parameter gives (a task's own ID when it names none), whose Terraform
// state the tasks naming it share, and the agents that may use it.
//
// A workspace belongs to the agent that first used it: the first task
// created on it (ClaimWorkspace) makes its agent the owner, Agents[0]. An
// unbound operator or admin of the org may grant it to more agents, or
// replace the list (SetWorkspaceAgents). An empty Agents is unowned: the
// next task of an agent claims it.
type Workspace struct {
	Org  string
	Name string
	// Agents may use the workspace: the owner first, then the agents it
	// was granted to, each once. Empty: unowned.
	Agents []string
	// CreatedAt and CreatedBy (a key's name) are of the first claim or
	// SetWorkspaceAgents; UpdatedAt and UpdatedBy of the last change of
	// Agents (the creation's until then).
	CreatedAt time.Time
	CreatedBy string
	UpdatedAt time.Time
	UpdatedBy string
	// LatestTaskID is the task of the latest claim that named one (by
	// LatestTaskAt, the task's creation time); "" for none.
	LatestTaskID string
	LatestTaskAt time.Time

	// Read-only, filled by GetWorkspace and ListWorkspaces.

	// LatestTaskStatus is the indexed status of LatestTaskID; "" when the
	// index does not hold it (not indexed yet, or its start failed).
	LatestTaskStatus task.Status
	// State is the latest version of the workspace's state, without Data;
	// nil when it has none.
	State *StateVersion
	// Lock is the held lock of its state; nil when unlocked.
	Lock *StateLock
}

// Allows reports whether a task or key of agent may use w: an agent among
// Agents, or no agent at all (a key bound to none acts for the whole org).
func (w Workspace) Allows(agent string) bool {
	return agent == "" || slices.Contains(w.Agents, agent)
}

// WorkspaceClaim is the use of a workspace by a new task (or by another
// writer of its state): see ClaimWorkspace.
type WorkspaceClaim struct {
	Org  string
	Name string
	// Agent is the task's agent ("" for none).
	Agent string
	// TaskID is the new task ("" when no task is created).
	TaskID string
	// By is the name of the key that makes the claim, and At when (the
	// task's creation time).
	By string
	At time.Time
}

// ApplyClaim is ClaimWorkspace's rule: it returns w after claim c and
// whether it changed. An unowned w becomes c.Agent's (when c has one); then
// c.Agent must be allowed (else ErrNotGranted, and w unchanged); then c's
// task becomes the latest unless a later one is recorded. Every
// WorkspaceStore implements ClaimWorkspace with it, on the row it read and
// locked (a new workspace is first stored unowned, by c).
func ApplyClaim(w Workspace, c WorkspaceClaim) (Workspace, bool, error) {
	changed := false
	next := w
	if len(w.Agents) == 0 && c.Agent != "" {
		next.Agents = []string{c.Agent}
		next.UpdatedAt, next.UpdatedBy = c.At, c.By
		changed = true
	}
	if !next.Allows(c.Agent) {
		return w, false, ErrNotGranted
	}
	if c.TaskID != "" && !c.At.Before(w.LatestTaskAt) {
		next.LatestTaskID, next.LatestTaskAt = c.TaskID, c.At
		changed = true
	}
	return next, changed, nil
}

// NewWorkspace is the row a first claim stores before ApplyClaim: unowned,
// created by c.
func NewWorkspace(c WorkspaceClaim) Workspace {
	return Workspace{Org: c.Org, Name: c.Name, Agents: []string{}, CreatedAt: c.At, CreatedBy: c.By, UpdatedAt: c.At, UpdatedBy: c.By}
}

// WorkspaceQuery selects a page of an org's workspaces, ordered by name
// (bytewise). Agent, when set, keeps the workspaces whose Agents hold it.
type WorkspaceQuery struct {
	Org    string
	Agent  string
	Limit  int // required, > 0
	Offset int
}

// WorkspaceStore keeps the workspaces of each org (see Workspace).
//
// Workspaces used before the store kept them (migration 0008) were filled
// in from their state: each workspace with a state version or lock got a
// row whose Agents are the agents of the tasks that wrote its versions, in
// the order of their first version (the earliest writer owns it); one
// whose versions were all written by keys, or by tasks the index no longer
// holds, is unowned (its next agent's task claims it).
type WorkspaceStore interface {
	// ClaimWorkspace records a use of a workspace: it creates the workspace
	// (created by c) when there is none, makes c.Agent the owner of an
	// unowned one, and records c.TaskID as its latest task, all atomically
	// with respect to every other claim and change of the workspace, in
	// every process sharing the store: of two first claims at once, one
	// makes its agent the owner and the other is refused unless it is of
	// the same agent. When c.Agent may not use the workspace it returns the
	// workspace (without the read-only fields) and ErrNotGranted, and
	// changes nothing.
	ClaimWorkspace(ctx context.Context, c WorkspaceClaim) (Workspace, error)
	// SetWorkspaceAgents replaces a workspace's Agents (nil is empty),
	// creating the workspace when there is none, and returns it with the
	// read-only fields. The caller validates agents.
	SetWorkspaceAgents(ctx context.Context, org, name string, agents []string, by string, at time.Time) (Workspace, error)
	// GetWorkspace returns a workspace of org with the read-only fields, or
	// ErrNotFound.
	GetWorkspace(ctx context.Context, org, name string) (Workspace, error)
	// ListWorkspaces returns a page with the read-only fields, and the
	// number of matching workspaces. Limit <= 0 is an error.
	ListWorkspaces(ctx context.Context, q WorkspaceQuery) ([]Workspace, int, error)
}
