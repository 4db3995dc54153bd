package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/terratask/terratask/api"
)

// WorkspacePage is a page of GET /workspaces, by name.
type WorkspacePage struct {
	Workspaces []api.Workspace
	Page
}

const workspacesPath = "/api/v1/workspaces"

// ListWorkspaces lists the org's workspaces (a key bound to an agent: those
// its agent may use), by name (GET /workspaces). limit (1..1000) and page
// (from 1) may be 0 for the server's defaults.
func (c *Client) ListWorkspaces(ctx context.Context, limit, page int) (WorkspacePage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	var out WorkspacePage
	resp, err := c.getJSON(ctx, workspacesPath, q, &out.Workspaces)
	out.Page = pageOf(resp.header)
	return out, err
}

// GetWorkspace reads a workspace: its agents, latest task, state serial and
// lock (GET /workspaces/{workspace}).
func (c *Client) GetWorkspace(ctx context.Context, name string) (api.Workspace, error) {
	var out api.Workspace
	if name == "" {
		return out, errEmptyID
	}
	_, err := c.getJSON(ctx, workspacesPath+"/"+seg(name), nil, &out)
	return out, err
}

// SetWorkspaceAgents replaces the agents that may use a workspace, the
// owner first; an empty list leaves it unowned (PUT /workspaces/{workspace};
// operator or admin keys not bound to an agent).
func (c *Client) SetWorkspaceAgents(ctx context.Context, name string, agents []string) (api.Workspace, error) {
	var out api.Workspace
	if name == "" {
		return out, errEmptyID
	}
	if agents == nil {
		agents = []string{}
	}
	_, err := c.sendJSON(ctx, http.MethodPut, workspacesPath+"/"+seg(name), nil, api.WorkspaceAgents{Agents: agents}, &out)
	return out, err
}
