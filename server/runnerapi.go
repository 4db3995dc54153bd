package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
)

// The runner API: what a runner host needs of the control plane besides
// Temporal and the state backend, so that it needs no access to the store
// (which holds every org's tasks, logs and plans):
//
//	POST /api/v1/runner/logs                 append task log entries
//	PUT  /api/v1/runner/plans/{taskId}        the reviewable plan of a task
//	PUT  /api/v1/runner/plan-files/{taskId}   the sealed plan file of a task
//	GET  /api/v1/runner/plan-files/{taskId}   read it back (another host applies)
//	GET  /api/v1/runner/tasks/{taskId}        a task's status (the janitor)
//	GET  /api/v1/runner/credentials/{taskId}  a step's credential sets, sealed
//	PUT  /api/v1/runner/hosts/{hostId}        the host's engines (runners routes)
//
// A runner authenticates as (org, runner ID) with HTTP basic auth: user
// ORG/RUNNER-ID ('/' is in neither), password its runner credential, an
// HMAC of its org's key (secret.Box.RunnerCredential), which only that
// org's runners and the control plane can make. It reaches only its own
// org's tasks that name its own runner ID: anything else is a 404.

const (
	runnerAPIPrefix = "/api/v1/runner"
	// maxRunnerBody bounds a runner API request: a batch of log lines or a
	// sealed plan file (Terraform plans of big configurations run to tens
	// of MiB).
	maxRunnerBody = 64 << 20
	ctxRunner     = "terratask.runner"
)

// runnerCaller is who called the runner API.
type runnerCaller struct{ org, id string }

func (s *Server) runnerRoutes(r *gin.Engine) {
	g := r.Group(runnerAPIPrefix, s.authenticateRunner)
	g.POST("/logs", s.runnerAppendLogs)
	g.PUT("/plans/:taskId", s.runnerPutPlan)
	g.PUT("/plan-files/:taskId", s.runnerPutPlanFile)
	g.GET("/plan-files/:taskId", s.runnerGetPlanFile)
	g.GET("/tasks/:taskId", s.runnerGetTask)
	g.GET("/credentials/:taskId", s.runnerGetCredentials)
	g.POST("/tokens/:taskId", s.runnerPostToken)
	g.PUT("/hosts/:hostId", s.runnerPutHost)
}

// authenticateRunner admits a runner credential (see above).
func (s *Server) authenticateRunner(c *gin.Context) {
	if s.authLocked(c) {
		c.Abort()
		return
	}
	c.Header("WWW-Authenticate", `Basic realm="terratask runner"`)
	user, pass, ok := c.Request.BasicAuth()
	if !ok {
		fail(c, http.StatusUnauthorized, codeUnauthorized, "the runner API needs a runner credential: basic auth ORG/RUNNER-ID and the runner's credential", nil)
		return
	}
	org, id, _ := strings.Cut(user, "/")
	if !auth.ValidName(org) || !validID(id) || s.opts.Secrets == nil || !s.checkRunnerCredential(pass, org, id) {
		s.authFailed(c)
		fail(c, http.StatusUnauthorized, codeUnauthorized, "invalid runner credential", nil)
		return
	}
	c.Set(ctxRunner, runnerCaller{org: org, id: id})
	c.Next()
}

func (s *Server) checkRunnerCredential(pass, org, id string) bool {
	box, err := s.opts.Secrets.Org(org)
	return err == nil && box.CheckRunnerCredential(pass, org, id)
}

func runnerOf(c *gin.Context) runnerCaller { return c.MustGet(ctxRunner).(runnerCaller) }

// runnerTask reads task id for the calling runner: its org's and its
// runner ID's, else a 404 (answered here; ok false).
func (s *Server) runnerTask(c *gin.Context, id string) (store.Task, bool) {
	rc := runnerOf(c)
	if !validID(id) {
		badParameter(c, "taskId", "taskId is not a valid task ID")
		return store.Task{}, false
	}
	t, err := s.opts.Store.GetTask(c.Request.Context(), rc.org, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.RunnerID != rc.id) {
		notFound(c, id)
		return store.Task{}, false
	}
	if err != nil {
		s.opts.Logger.Error("runner API: reading a task", zap.String("task_id", id), zap.Error(err))
		internal(c)
		return store.Task{}, false
	}
	return t, true
}

// readRunnerJSON decodes the body into v: JSON of at most maxRunnerBody
// bytes, no unknown fields.
func readRunnerJSON(c *gin.Context, v any) bool {
	if !requireJSON(c) {
		return false
	}
	body, ok := readBody(c, maxRunnerBody)
	if !ok {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		badField(c, "body", "the body is not the expected JSON: "+err.Error())
		return false
	}
	return true
}

func (s *Server) runnerAppendLogs(c *gin.Context) {
	var entries []store.LogEntry
	if !readRunnerJSON(c, &entries) {
		return
	}
	seen := map[string]bool{}
	for i, e := range entries {
		if string(e.MetadataJSON) == "null" { // how a nil one travels
			entries[i].MetadataJSON, e.MetadataJSON = nil, nil
		}
		if e.ID != 0 || e.MetadataJSON != nil {
			badField(c, "body", "log entries carry no ID or MetadataJSON: the store assigns them")
			return
		}
		if e.TaskID == "" || e.Stream == "" || e.Seq < 1 {
			badField(c, "body", "a log entry needs TaskID, Stream and a Seq from 1 (entry "+strconv.Itoa(i)+")")
			return
		}
		if !seen[e.TaskID] {
			if _, ok := s.runnerTask(c, e.TaskID); !ok {
				return
			}
			seen[e.TaskID] = true
		}
	}
	if err := s.opts.Store.AppendLogs(c.Request.Context(), entries); err != nil {
		s.opts.Logger.Error("runner API: appending logs", zap.Error(err))
		internal(c)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) runnerPutPlan(c *gin.Context) {
	t, ok := s.runnerTask(c, c.Param("taskId"))
	if !ok {
		return
	}
	var p store.Plan
	if !readRunnerJSON(c, &p) {
		return
	}
	if p.TaskID != t.ID || (p.Org != "" && p.Org != t.Org) {
		badField(c, "TaskID", "the plan names another task than the path")
		return
	}
	p.Org, p.CreatedAt = t.Org, time.Time{}
	if err := s.opts.Store.PutPlan(c.Request.Context(), p); err != nil {
		s.opts.Logger.Error("runner API: storing a plan", zap.String("task_id", t.ID), zap.Error(err))
		internal(c)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) runnerPutPlanFile(c *gin.Context) {
	t, ok := s.runnerTask(c, c.Param("taskId"))
	if !ok {
		return
	}
	var f store.PlanFile
	if !readRunnerJSON(c, &f) {
		return
	}
	if f.TaskID != t.ID || (f.Org != "" && f.Org != t.Org) {
		badField(c, "TaskID", "the plan file names another task than the path")
		return
	}
	f.Org, f.CreatedAt = t.Org, time.Time{}
	if err := s.opts.Store.PutPlanFile(c.Request.Context(), f); err != nil {
		s.opts.Logger.Error("runner API: storing a plan file", zap.String("task_id", t.ID), zap.Error(err))
		internal(c)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) runnerGetPlanFile(c *gin.Context) {
	t, ok := s.runnerTask(c, c.Param("taskId"))
	if !ok {
		return
	}
	f, err := s.opts.Store.GetPlanFile(c.Request.Context(), t.Org, t.ID)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, codeNotFound, "the task has no plan file", map[string]any{"taskId": t.ID})
		return
	}
	if err != nil {
		s.opts.Logger.Error("runner API: reading a plan file", zap.String("task_id", t.ID), zap.Error(err))
		internal(c)
		return
	}
	c.JSON(http.StatusOK, f)
}

// runnerTaskStatus is the answer of GET /api/v1/runner/tasks/{taskId}.
type runnerTaskStatus struct {
	Status string `json:"status"`
}

func (s *Server) runnerGetTask(c *gin.Context) {
	t, ok := s.runnerTask(c, c.Param("taskId"))
	if !ok {
		return
	}
	c.JSON(http.StatusOK, runnerTaskStatus{Status: string(t.Status)})
}

func (s *Server) runnerPutHost(c *gin.Context) {
	rc := runnerOf(c)
	var h store.RunnerHost
	if !readRunnerJSON(c, &h) {
		return
	}
	if h.HostID != c.Param("hostId") || !validID(h.HostID) {
		badParameter(c, "hostId", "hostId must be the body's HostID, a valid ID")
		return
	}
	if (h.Org != "" && h.Org != rc.org) || (h.RunnerID != "" && h.RunnerID != rc.id) {
		badField(c, "RunnerID", "a runner publishes its own hosts only")
		return
	}
	h.Org, h.RunnerID = rc.org, rc.id
	if err := s.opts.Store.PutRunnerHost(c.Request.Context(), h); err != nil {
		s.opts.Logger.Error("runner API: publishing a host", zap.Error(err))
		internal(c)
		return
	}
	c.Status(http.StatusNoContent)
}

// maxRunnerCredentialSets bounds the sets one request asks for: those the
// task names and those attached to it.
const maxRunnerCredentialSets = 100

// runnerWorkspacePattern is a workspace as a step uses it (the task's own
// workspace is its ID, ':' of a scheduled one's made '_').
var runnerWorkspacePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// runnerCredentials is the answer of GET /api/v1/runner/credentials/{taskId}.
type runnerCredentials struct {
	Sets []store.CredentialDelivery `json:"sets"`
}

// runnerGetCredentials answers the credential sets a step of the task
// uses: those its input names (query "set", repeated, in order), each
// checked now against the task's agent (the stored one), its workspace as
// the step uses it (query "workspace") and the calling runner, with its
// values still sealed under the org's key and its oidc configuration. A
// set that no longer exists or no longer serves the task is a 403 naming
// it, and the step fails; a task that has ended gets none (409).
func (s *Server) runnerGetCredentials(c *gin.Context) {
	t, ok := s.runnerTask(c, c.Param("taskId"))
	if !ok {
		return
	}
	q, ok := query(c)
	if !ok {
		return
	}
	for k, vs := range q {
		switch {
		case k == "workspace" && len(vs) == 1 && runnerWorkspacePattern.MatchString(vs[0]):
		case k == "set" && len(vs) <= maxRunnerCredentialSets:
			for _, name := range vs {
				if !credentialSetPattern.MatchString(name) {
					badParameter(c, "set", "set must name credential sets")
					return
				}
			}
		default:
			badParameter(c, k, "the query is workspace (once, the task's workspace) and set (a credential set the task uses, repeated)")
			return
		}
	}
	if q.Get("workspace") == "" {
		badParameter(c, "workspace", "workspace is required: the task's workspace")
		return
	}
	if t.Status.Terminal() {
		fail(c, http.StatusConflict, codeConflict, "the task has ended: it gets no credentials", map[string]any{"taskId": t.ID, "status": string(t.Status)})
		return
	}
	rc := runnerOf(c)
	sets, err := store.DeliverCredentials(c.Request.Context(), s.opts.Store, t.AgentID, store.CredentialRequest{
		Org: rc.org, RunnerID: rc.id, TaskID: t.ID, Workspace: q.Get("workspace"), Sets: q["set"]})
	var refused *store.CredentialRefusedError
	if errors.As(err, &refused) {
		fail(c, http.StatusForbidden, codeForbidden, refused.Error(), map[string]any{"set": refused.Set, "scope": refused.Scope, "value": refused.Value})
		return
	}
	if err != nil {
		s.opts.Logger.Error("runner API: reading credential sets", zap.String("task_id", t.ID), zap.Error(err))
		internal(c)
		return
	}
	c.JSON(http.StatusOK, runnerCredentials{Sets: sets})
}
