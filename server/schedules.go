package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/schedules"
	"github.com/terratask/terratask/store"
)

// scheduleRoutes serves /api/v1/schedules: Temporal Schedules that start
// tasks (package schedules). Viewers read; operators and admins write. A
// schedule of another org is a 404; an agent-bound key sees and writes only
// the schedules whose template is its agent's.
func (s *Server) scheduleRoutes(g *gin.RouterGroup) {
	g.GET("/schedules", s.listSchedules)
	g.POST("/schedules", s.createSchedule)
	g.GET("/schedules/:scheduleId", s.getSchedule)
	g.PATCH("/schedules/:scheduleId", s.patchSchedule)
	g.DELETE("/schedules/:scheduleId", s.deleteSchedule)
	g.POST("/schedules/:scheduleId/trigger", s.triggerSchedule)
}

func (s *Server) schedules() *schedules.Client { return schedules.New(s.opts.Temporal) }

// badBody answers a *fieldError (any other error as the body's).
func badBody(c *gin.Context, err error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		badField(c, fe.Field, fe.Error())
		return
	}
	badField(c, "body", "invalid request body")
}

func scheduleNotFound(c *gin.Context, id string) {
	fail(c, http.StatusNotFound, codeNotFound, "Schedule not found", map[string]any{"scheduleId": id})
}

// readSchedule reads a create (create) or patch body and lays it over cur
// (see resolveSchedule); it writes the 4xx itself and reports false.
func (s *Server) readSchedule(c *gin.Context, cur schedules.Definition, create bool) (*resolvedSchedule, bool) {
	body, ok := s.readJSONBody(c)
	if !ok {
		return nil, false
	}
	b, err := parseScheduleBody(body)
	if err != nil {
		badBody(c, err)
		return nil, false
	}
	res, err := resolveSchedule(cur, b, create)
	if err != nil {
		badBody(c, err)
		return nil, false
	}
	return res, true
}

// scheduleGone answers a change to a schedule Temporal no longer has.
func scheduleGone(c *gin.Context, id string) {
	fail(c, http.StatusConflict, codeConflict, "Temporal no longer has this schedule (deleted outside the API); delete it here too",
		map[string]any{"scheduleId": id})
}

// loadSchedule returns the caller's schedule and its definition, writing the
// 404 when it is missing, of another org, or of another agent than the
// caller's key is bound to.
func (s *Server) loadSchedule(c *gin.Context) (store.Schedule, schedules.Definition, bool) {
	id := c.Param("scheduleId")
	p := principal(c)
	if !validID(id) {
		scheduleNotFound(c, id)
		return store.Schedule{}, schedules.Definition{}, false
	}
	row, err := s.opts.Store.GetSchedule(c.Request.Context(), p.Org, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.CanSeeAgent(row.AgentID)) {
		scheduleNotFound(c, id)
		return store.Schedule{}, schedules.Definition{}, false
	}
	var def schedules.Definition
	if err == nil {
		err = json.Unmarshal(row.Definition, &def)
	}
	if err != nil {
		s.opts.Logger.Error("reading schedule", zap.String("schedule_id", id), zap.Error(err))
		internal(c)
		return store.Schedule{}, schedules.Definition{}, false
	}
	return row, def, true
}

// templateAction checks the template's tasks as a create checks a task (its
// notify host, the caller's agent) and builds the action that starts them,
// whose template authors wrote; it writes the 4xx or 5xx itself and reports
// false.
func (s *Server) templateAction(c *gin.Context, id string, req *createRequest, authors []string) (schedules.Action, bool) {
	if fe := s.checkEgress(&req.Params); fe != nil {
		badBody(c, errField("template."+fe.Field, "%s", fe.Message))
		return schedules.Action{}, false
	}
	p := principal(c)
	if !p.CanSeeAgent(req.AgentID) {
		fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" may only schedule tasks for agent "+p.Agent,
			map[string]any{detailField: "template.agent_id"})
		return schedules.Action{}, false
	}
	// Its credential sets, as a create checks them (a template without a
	// workspace is checked with workspace ""; each step checks the task's
	// own again).
	sets, ok := s.resolveCredentials(c, "template.", req.AgentID, req.Params.Workspace, req.RunnerID, req)
	if !ok {
		return schedules.Action{}, false
	}
	req.CredentialSets = sets
	// A named workspace is claimed now: the schedule's tasks are started
	// by Temporal, past the create route's check (see workspaces.go).
	if req.Params.Workspace != "" && !s.claimWorkspace(c, p, "template.", req.AgentID, req.Params.Workspace, "", time.Now().UTC()) {
		return schedules.Action{}, false
	}
	action, err := s.scheduleAction(p, id, req, authors)
	if err != nil {
		s.opts.Logger.Error("building a schedule's action", zap.Error(err))
		internal(c)
		return schedules.Action{}, false
	}
	return action, true
}

// scheduleAction builds what the schedule starts from its parsed template:
// the task's input, its secrets sealed as a create seals them. The task's
// creator is p, the key that wrote the template last; its authors everyone
// who wrote it, so four eyes refuses each of them.
func (s *Server) scheduleAction(p auth.Principal, id string, req *createRequest, authors []string) (schedules.Action, error) {
	meta := map[string]any{}
	for k, v := range req.Metadata {
		meta[k] = v
	}
	meta["schedule_id"] = id
	in := s.inputOf(p, req)
	in.Metadata, in.ScheduleID, in.Authors = meta, id, authors
	sealed, err := s.sealSecrets(in.Org, req.Secrets)
	if err != nil {
		return schedules.Action{}, err
	}
	in.SealedSecrets = sealed
	return schedules.Action{Input: in}, nil
}

func (s *Server) createSchedule(c *gin.Context) {
	if !allow(c, auth.ActionCreate) {
		return
	}
	res, ok := s.readSchedule(c, schedules.Definition{}, true)
	if !ok {
		return
	}
	p := principal(c)
	id := schedules.NewID()
	res.Def.TemplateAuthors = []string{p.Name}
	action, ok := s.templateAction(c, id, res.Task, res.Def.TemplateAuthors)
	if !ok {
		return
	}
	def, err := json.Marshal(res.Def)
	if err != nil {
		internal(c)
		return
	}
	now := time.Now().UTC()
	row := store.Schedule{ID: id, Org: p.Org, Name: res.Def.Name, Kind: string(res.Def.Kind), AgentID: res.Task.AgentID,
		RunnerID: res.Task.RunnerID, Definition: def, CreatedBy: p.Name, CreatedAt: now, UpdatedAt: now}
	ctx := c.Request.Context()
	// The index row first: a schedule that runs is always one the API shows.
	if err := s.opts.Store.CreateSchedule(ctx, row); err != nil {
		s.opts.Logger.Error("indexing a new schedule", zap.String("schedule_id", id), zap.Error(err))
		internal(c)
		return
	}
	if err := s.schedules().Create(ctx, id, res.Def, action); err != nil {
		s.opts.Logger.Error("creating a Temporal schedule", zap.String("schedule_id", id), zap.Error(err))
		if derr := s.opts.Store.DeleteSchedule(context.WithoutCancel(ctx), p.Org, id); derr != nil {
			s.opts.Logger.Error("removing the index row of a schedule Temporal did not create", zap.String("schedule_id", id), zap.Error(derr))
		}
		unavailable(c, "create the schedule")
		return
	}
	c.JSON(http.StatusOK, s.scheduleDetail(ctx, row, res.Def))
}

func (s *Server) getSchedule(c *gin.Context) {
	if !allow(c, auth.ActionRead) {
		return
	}
	row, def, ok := s.loadSchedule(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, s.scheduleDetail(c.Request.Context(), row, def))
}

func (s *Server) patchSchedule(c *gin.Context) {
	row, cur, ok := s.loadSchedule(c)
	if !ok {
		return
	}
	if !allow(c, auth.ActionCreate) {
		return
	}
	res, ok := s.readSchedule(c, cur, false)
	if !ok {
		return
	}
	var action *schedules.Action
	if res.Task != nil {
		// A new template: its writer joins the authors (a schedule
		// created before authors were kept has its creator as the first).
		authors := cur.TemplateAuthors
		if len(authors) == 0 {
			authors = []string{row.CreatedBy}
		}
		res.Def.TemplateAuthors = schedules.AddAuthor(authors, principal(c).Name)
		a, ok := s.templateAction(c, row.ID, res.Task, res.Def.TemplateAuthors)
		if !ok {
			return
		}
		action = &a
		row.AgentID, row.RunnerID = res.Task.AgentID, res.Task.RunnerID
	}
	ctx := c.Request.Context()
	if err := s.schedules().Update(ctx, row.ID, res.Def, action); err != nil {
		if errors.Is(err, schedules.ErrNotFound) {
			scheduleGone(c, row.ID)
			return
		}
		s.opts.Logger.Error("updating a Temporal schedule", zap.String("schedule_id", row.ID), zap.Error(err))
		unavailable(c, "update the schedule")
		return
	}
	def, err := json.Marshal(res.Def)
	if err != nil {
		internal(c)
		return
	}
	row.Definition = def
	row.Name, row.Kind, row.UpdatedAt = res.Def.Name, string(res.Def.Kind), time.Now().UTC()
	if err := s.opts.Store.UpdateSchedule(ctx, row); err != nil {
		s.opts.Logger.Error("updating a schedule's index row", zap.String("schedule_id", row.ID), zap.Error(err))
		internal(c)
		return
	}
	c.JSON(http.StatusOK, s.scheduleDetail(ctx, row, res.Def))
}

func (s *Server) deleteSchedule(c *gin.Context) {
	row, def, ok := s.loadSchedule(c)
	if !ok {
		return
	}
	if !allow(c, auth.ActionCreate) {
		return
	}
	ctx := c.Request.Context()
	if err := s.schedules().Delete(ctx, row.ID); err != nil && !errors.Is(err, schedules.ErrNotFound) {
		s.opts.Logger.Error("deleting a Temporal schedule", zap.String("schedule_id", row.ID), zap.Error(err))
		unavailable(c, "delete the schedule")
		return
	}
	if err := s.opts.Store.DeleteSchedule(ctx, row.Org, row.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.opts.Logger.Error("deleting a schedule's index row", zap.String("schedule_id", row.ID), zap.Error(err))
		internal(c)
		return
	}
	c.JSON(http.StatusOK, scheduleView(row, def))
}

func (s *Server) triggerSchedule(c *gin.Context) {
	row, def, ok := s.loadSchedule(c)
	if !ok {
		return
	}
	if !allow(c, auth.ActionCreate) {
		return
	}
	ctx := c.Request.Context()
	if err := s.schedules().Trigger(ctx, row.ID); err != nil {
		if errors.Is(err, schedules.ErrNotFound) {
			scheduleGone(c, row.ID)
			return
		}
		s.opts.Logger.Error("triggering a Temporal schedule", zap.String("schedule_id", row.ID), zap.Error(err))
		unavailable(c, "trigger the schedule")
		return
	}
	c.JSON(http.StatusOK, s.scheduleDetail(ctx, row, def))
}

var scheduleListParams = map[string]bool{"kind": true, "limit": true, "page": true}

// parseScheduleListQuery validates the query of GET /schedules.
func parseScheduleListQuery(q map[string][]string) (store.ScheduleQuery, int, error) {
	sq := store.ScheduleQuery{Limit: defaultListLimit}
	page := 1
	for k, vs := range q {
		if !scheduleListParams[k] {
			return sq, 0, errField(k, "unknown query parameter (allowed: kind, limit, page)")
		}
		if len(vs) > 1 {
			return sq, 0, errField(k, "may be given once")
		}
	}
	if v, ok := single(q, "kind"); ok {
		if !schedules.Kind(v).Valid() {
			return sq, 0, errField("kind", "must be task or drift")
		}
		sq.Kind = v
	}
	if err := parsePaging(q, &sq.Limit, &page); err != nil {
		return sq, 0, err
	}
	sq.Offset = (page - 1) * sq.Limit
	return sq, page, nil
}

func (s *Server) listSchedules(c *gin.Context) {
	if !allow(c, auth.ActionRead) {
		return
	}
	q, ok := query(c)
	if !ok {
		return
	}
	sq, page, err := parseScheduleListQuery(q)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	p := principal(c)
	sq.Org, sq.AgentID = p.Org, p.Agent
	rows, total, err := s.opts.Store.ListSchedules(c.Request.Context(), sq)
	if err != nil {
		s.opts.Logger.Error("listing schedules", zap.Error(err))
		internal(c)
		return
	}
	c.Header("X-Total-Count", strconv.Itoa(total))
	if link := pageLinks(c.Request.URL, page, sq.Limit, total); link != "" {
		c.Header("Link", link)
	}
	out := make([]api.Schedule, 0, len(rows))
	for _, row := range rows {
		var def schedules.Definition
		if err := json.Unmarshal(row.Definition, &def); err != nil {
			s.opts.Logger.Error("reading schedule", zap.String("schedule_id", row.ID), zap.Error(err))
			internal(c)
			return
		}
		out = append(out, scheduleView(row, def))
	}
	c.JSON(http.StatusOK, out)
}
