package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/store"
)

// OIDC workload identity (issue 22): the issuer's public documents and the
// runner API's tokens route.

// wellKnown serves the OIDC issuer's discovery document and JWKS (public),
// or 404 without --oidc-issuer.
func (s *Server) wellKnown(c *gin.Context) {
	if s.opts.OIDC == nil {
		fail(c, http.StatusNotFound, codeNotFound, "this server has no --oidc-issuer: it publishes no OIDC documents", nil)
		return
	}
	s.opts.OIDC.Handler().ServeHTTP(c.Writer, c.Request)
}

// runnerTokenRequest is the body of POST /api/v1/runner/tokens/{taskId}.
type runnerTokenRequest struct {
	Set        string `json:"set"`
	Phase      string `json:"phase"`
	Workspace  string `json:"workspace"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// runnerToken is its answer.
type runnerToken struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// maxRunnerTokenTTL bounds ttl_seconds (the issuer cuts it further to its
// MaxTTL).
const maxRunnerTokenTTL = 24 * time.Hour

// runnerPostToken mints the OIDC token of a step of the task for one of
// its credential sets: the task is the calling runner's (its org's, naming
// its runner ID) and has not ended; the set exists, serves the task's
// agent, the workspace and the runner as they are now (403 naming it, as
// the credentials route), and has oidc (409). The claims come from the
// task: its org, agent, the key that created it (from its workflow, when it
// answers), the runner; the audience from the set. Without --oidc-issuer,
// 501.
func (s *Server) runnerPostToken(c *gin.Context) {
	t, ok := s.runnerTask(c, c.Param("taskId"))
	if !ok {
		return
	}
	var req runnerTokenRequest
	if !readRunnerJSON(c, &req) {
		return
	}
	switch {
	case !credentialSetPattern.MatchString(req.Set):
		badField(c, "set", "set must name a credential set of the task")
		return
	case req.Phase != oidc.PhasePlan && req.Phase != oidc.PhaseApply:
		badField(c, "phase", `phase is "plan" or "apply"`)
		return
	case !runnerWorkspacePattern.MatchString(req.Workspace):
		badField(c, "workspace", "workspace is required: the task's workspace as the step uses it")
		return
	case req.TTLSeconds < 0 || time.Duration(req.TTLSeconds)*time.Second > maxRunnerTokenTTL:
		badField(c, "ttl_seconds", "ttl_seconds is 0 (the default) or a positive number of seconds, at most a day")
		return
	}
	if s.opts.OIDC == nil {
		fail(c, http.StatusNotImplemented, codeUnavailable, store.ErrNoOIDCIssuer.Error(), map[string]any{"set": req.Set})
		return
	}
	if t.Status.Terminal() {
		fail(c, http.StatusConflict, codeConflict, "the task has ended: it gets no tokens", map[string]any{"taskId": t.ID, "status": string(t.Status)})
		return
	}
	rc := runnerOf(c)
	key := ""
	if st, ok := s.queryState(c.Request.Context(), t.ID); ok {
		key = st.CreatedBy
	}
	tt := oidc.TaskTokens{Issuer: s.opts.OIDC, Sets: s.opts.Store}
	token, exp, err := tt.Mint(c.Request.Context(), t, key, store.TokenRequest{
		Org: rc.org, RunnerID: rc.id, TaskID: t.ID, Workspace: req.Workspace, Set: req.Set, Phase: req.Phase,
		TTL: time.Duration(req.TTLSeconds) * time.Second})
	var refused *store.CredentialRefusedError
	switch {
	case errors.As(err, &refused):
		fail(c, http.StatusForbidden, codeForbidden, refused.Error(), map[string]any{"set": refused.Set, "scope": refused.Scope, "value": refused.Value})
		return
	case errors.Is(err, store.ErrNotOIDCSet):
		fail(c, http.StatusConflict, codeConflict, "credential set "+req.Set+" has no oidc configuration", map[string]any{"set": req.Set})
		return
	case err != nil:
		s.opts.Logger.Error("runner API: minting a token", zap.String("task_id", t.ID), zap.String("set", req.Set), zap.Error(err))
		internal(c)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, runnerToken{Token: token, ExpiresAt: api.Time(exp)})
}
