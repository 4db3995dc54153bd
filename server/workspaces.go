package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/schedules"
	"github.com/terratask/terratask/store"
)

// Workspaces are a resource: each (org, workspace) belongs to the agent of
// the first task created on it (store.WorkspaceStore), and a key bound to
// an agent reaches only the workspaces its agent may use; another agent's
// workspace is a 404, as another agent's task is. Who may use a workspace
// is decided here, for every route that touches one:
//
//   - a task's create and a schedule's template claim their workspace
//     (claimWorkspace): the first makes its agent the owner, atomically;
//     a task of an agent the workspace is not granted to is refused before
//     anything starts (404 for a key bound to an agent, 409 for an unbound
//     key, which sees the workspace and may grant it);
//   - the state routes, for API keys (keyReachesWorkspace): a bound key's
//     agent must be among the workspace's agents; an admin key's write
//     claims the workspace as a task would. Task state credentials are
//     not affected: a task's credential opens its own workspace;
//   - GET /workspaces and /workspaces/{workspace} show a bound key only its
//     agent's workspaces; PUT /workspaces/{workspace} (unbound operators
//     and admins only) replaces the agents, the owner first.
//
// A task's tasks and plan routes stay filtered by its agent (loadTask): a
// task is created only on a workspace its agent may use, so another agent's
// key never sees a task, or a plan, of a workspace that is not its own.

// workspaceRoutes serves /api/v1/workspaces.
func (s *Server) workspaceRoutes(g *gin.RouterGroup) {
	g.GET("/workspaces", s.listWorkspaces)
	g.GET("/workspaces/:workspace", s.getWorkspace)
	g.PUT("/workspaces/:workspace", s.putWorkspace)
}

// workspaceNotFound is the 404 of a workspace that does not exist or that
// the caller's agent may not use; msg explains it.
func workspaceNotFound(c *gin.Context, name, msg string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	details["workspace"] = name
	fail(c, http.StatusNotFound, codeNotFound, msg, details)
}

// grantHint tells how a workspace is granted to more agents.
func grantHint(name string) string {
	return "an operator or admin key of the org not bound to an agent may grant it (PUT /api/v1/workspaces/" + name + ")"
}

// claimWorkspace records that a task of agent, which p creates, uses the
// workspace name (taskID "" for a schedule's template, whose tasks are
// created later): the workspace's first task makes its agent the owner.
// When the agent may not use the workspace it answers (404 for a key bound
// to an agent, 409 for an unbound key; the details name the body's field,
// under prefix: "" for a create, "template." for a schedule) and reports
// false.
func (s *Server) claimWorkspace(c *gin.Context, p auth.Principal, prefix, agent, name, taskID string, at time.Time) bool {
	w, err := s.opts.Store.ClaimWorkspace(c.Request.Context(), store.WorkspaceClaim{
		Org: p.Org, Name: name, Agent: agent, TaskID: taskID, By: p.Name, At: at})
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotGranted) && p.Agent != "":
		workspaceNotFound(c, name, fmt.Sprintf("Workspace not found: agent %s may not use workspace %s, which belongs to another agent; %s",
			agent, name, grantHint(name)), map[string]any{detailField: prefix + "parameters.workspace"})
	case errors.Is(err, store.ErrNotGranted):
		fail(c, http.StatusConflict, codeConflict, fmt.Sprintf("workspace %s belongs to agent %s and is not granted to agent %s: grant it first (PUT /api/v1/workspaces/%s)",
			name, strings.Join(w.Agents, ", "), agent, name),
			map[string]any{"workspace": name, "agents": w.Agents, detailField: prefix + "agent_id"})
	default:
		s.opts.Logger.Error("claiming a workspace", zap.String("workspace", name), zap.Error(err))
		internal(c)
	}
	return false
}

// keyReachesWorkspace decides whether API key p reaches the state routes
// of (org, ws), an org it belongs to. A key bound to an agent reaches the
// workspaces its agent may use, and nothing else (404: Terraform reads it
// as "no state", which tells nothing). A write of a key allowed to write
// state (lock, push, unlock) claims the workspace as a task would: an
// unowned one becomes its agent's, a new one is recorded. It answers and
// reports false when the key may not go on.
func (s *Server) keyReachesWorkspace(c *gin.Context, p auth.Principal, org, ws string) bool {
	write := c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead
	if write && p.Role.Allows(auth.ActionWriteState) {
		w, err := s.opts.Store.ClaimWorkspace(c.Request.Context(), store.WorkspaceClaim{
			Org: org, Name: ws, Agent: p.Agent, By: p.Name, At: time.Now().UTC()})
		switch {
		case err == nil && w.Allows(p.Agent):
			return true
		case err == nil || errors.Is(err, store.ErrNotGranted):
			s.stateWorkspaceNotFound(c, p, ws)
		default:
			s.opts.Logger.Error("state: claiming the workspace", zap.String("workspace", ws), zap.Error(err))
			internal(c)
		}
		return false
	}
	if p.Agent == "" {
		return true
	}
	w, err := s.opts.Store.GetWorkspace(c.Request.Context(), org, ws)
	switch {
	case err == nil && w.Allows(p.Agent):
		return true
	case err == nil || errors.Is(err, store.ErrNotFound):
		s.stateWorkspaceNotFound(c, p, ws)
	default:
		s.opts.Logger.Error("state: reading the workspace", zap.String("workspace", ws), zap.Error(err))
		internal(c)
	}
	return false
}

func (s *Server) stateWorkspaceNotFound(c *gin.Context, p auth.Principal, ws string) {
	workspaceNotFound(c, ws, "Workspace not found: key "+p.Name+" of agent "+p.Agent+" reaches only the state of workspaces its agent may use", nil)
}

// workspaceView renders a workspace.
func workspaceView(w store.Workspace) api.Workspace {
	v := api.Workspace{Name: w.Name, Agents: w.Agents, CreatedAt: ts(w.CreatedAt), CreatedBy: w.CreatedBy,
		UpdatedAt: ts(w.UpdatedAt), UpdatedBy: w.UpdatedBy}
	if v.Agents == nil {
		v.Agents = []string{}
	}
	if w.LatestTaskID != "" && w.LatestTaskStatus != "" {
		v.LatestTask = &api.WorkspaceTask{ID: w.LatestTaskID, Status: w.LatestTaskStatus}
	}
	if w.State != nil {
		serial := w.State.Serial
		v.StateSerial = &serial
	}
	if w.Lock != nil {
		l := &api.WorkspaceLock{ID: w.Lock.ID, TaskID: w.Lock.TaskID, CreatedAt: ts(w.Lock.CreatedAt)}
		var info struct{ Who, Operation string }
		if json.Unmarshal(w.Lock.Info, &info) == nil {
			l.Who, l.Operation = info.Who, info.Operation
		}
		v.Lock = l
	}
	return v
}

// workspaceParam returns the route's workspace name, answering the 400 of
// an invalid one.
func workspaceParam(c *gin.Context) (string, bool) {
	name := c.Param("workspace")
	if !validWorkspace(name) {
		badParameter(c, "workspace", "workspace: must be 1 to 128 letters, digits and @._:+- (not . or ..)")
		return "", false
	}
	return name, true
}

func (s *Server) listWorkspaces(c *gin.Context) {
	if !allow(c, auth.ActionRead) {
		return
	}
	q, ok := query(c)
	if !ok {
		return
	}
	for k, vs := range q {
		if !workspaceListParams[k] {
			badParameter(c, k, k+": unknown query parameter (allowed: limit, page)")
			return
		}
		if len(vs) > 1 {
			badParameter(c, k, k+": may be given once")
			return
		}
	}
	p := principal(c)
	wq, page := store.WorkspaceQuery{Org: p.Org, Agent: p.Agent, Limit: defaultListLimit}, 1
	if err := parsePaging(q, &wq.Limit, &page); err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	wq.Offset = (page - 1) * wq.Limit
	rows, total, err := s.opts.Store.ListWorkspaces(c.Request.Context(), wq)
	if err != nil {
		s.opts.Logger.Error("listing workspaces", zap.Error(err))
		internal(c)
		return
	}
	c.Header("X-Total-Count", strconv.Itoa(total))
	if link := pageLinks(c.Request.URL, page, wq.Limit, total); link != "" {
		c.Header("Link", link)
	}
	out := make([]api.Workspace, 0, len(rows))
	for _, w := range rows {
		out = append(out, workspaceView(w))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getWorkspace(c *gin.Context) {
	if !allow(c, auth.ActionRead) {
		return
	}
	name, ok := workspaceParam(c)
	if !ok {
		return
	}
	p := principal(c)
	w, err := s.opts.Store.GetWorkspace(c.Request.Context(), p.Org, name)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !w.Allows(p.Agent)):
		workspaceNotFound(c, name, "Workspace not found", nil)
	case err != nil:
		s.opts.Logger.Error("reading a workspace", zap.String("workspace", name), zap.Error(err))
		internal(c)
	default:
		c.JSON(http.StatusOK, workspaceView(w))
	}
}

// putWorkspace replaces the agents that may use a workspace, the owner
// first (the owner may change too, or go: an empty list leaves it
// unowned); a workspace nobody used yet is created, so an operator may
// reserve it for an agent. Unbound operator and admin keys only. An agent
// that loses the workspace must have no schedule naming it (409): a
// schedule's tasks are started by Temporal, past the create route's check.
func (s *Server) putWorkspace(c *gin.Context) {
	p := principal(c)
	if p.Agent != "" {
		fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" is bound to agent "+p.Agent+": keys of agents never grant workspaces", nil)
		return
	}
	if !allow(c, auth.ActionGrantWorkspace) {
		return
	}
	name, ok := workspaceParam(c)
	if !ok {
		return
	}
	body, ok := s.readJSONBody(c)
	if !ok {
		return
	}
	agents, err := parseWorkspaceAgents(body)
	if err != nil {
		badBody(c, err)
		return
	}
	ctx := c.Request.Context()
	cur, err := s.opts.Store.GetWorkspace(ctx, p.Org, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.opts.Logger.Error("reading a workspace", zap.String("workspace", name), zap.Error(err))
		internal(c)
		return
	}
	var removed []string
	for _, a := range cur.Agents {
		if !slices.Contains(agents, a) {
			removed = append(removed, a)
		}
	}
	if len(removed) > 0 {
		using, err := s.schedulesOnWorkspace(ctx, p.Org, name, removed)
		if err != nil {
			s.opts.Logger.Error("listing a workspace's schedules", zap.String("workspace", name), zap.Error(err))
			internal(c)
			return
		}
		if len(using) > 0 {
			fail(c, http.StatusConflict, codeConflict, fmt.Sprintf("agents losing workspace %s have schedules that start tasks on it (%s): delete them or change their template first",
				name, strings.Join(using, ", ")), map[string]any{"workspace": name, "schedules": using, detailField: "agents"})
			return
		}
	}
	w, err := s.opts.Store.SetWorkspaceAgents(ctx, p.Org, name, agents, p.Name, time.Now().UTC())
	if err != nil {
		s.opts.Logger.Error("setting a workspace's agents", zap.String("workspace", name), zap.Error(err))
		internal(c)
		return
	}
	s.opts.Logger.Info("workspace agents set", zap.String("org", p.Org), zap.String("workspace", name),
		zap.Strings("agents", agents), zap.String("key", p.Name))
	c.JSON(http.StatusOK, workspaceView(w))
}

// schedulesOnWorkspace lists the IDs of org's schedules of agents whose
// template names the workspace.
func (s *Server) schedulesOnWorkspace(ctx context.Context, org, workspace string, agents []string) ([]string, error) {
	var ids []string
	for _, agent := range agents {
		for offset := 0; ; offset += maxListLimit {
			rows, total, err := s.opts.Store.ListSchedules(ctx, store.ScheduleQuery{Org: org, AgentID: agent, Limit: maxListLimit, Offset: offset})
			if err != nil {
				return nil, err
			}
			for _, row := range rows {
				var def schedules.Definition
				var tmpl struct {
					Parameters struct {
						Workspace string `json:"workspace"`
					} `json:"parameters"`
				}
				if json.Unmarshal(row.Definition, &def) != nil || json.Unmarshal(def.Template, &tmpl) != nil {
					return nil, fmt.Errorf("schedule %s: unreadable definition", row.ID)
				}
				if tmpl.Parameters.Workspace == workspace {
					ids = append(ids, row.ID)
				}
			}
			if len(rows) == 0 || offset+len(rows) >= total {
				break
			}
		}
	}
	return ids, nil
}
