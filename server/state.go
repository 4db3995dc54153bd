package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
)

// The Terraform HTTP state backend.
//
// The server keeps the state of each (org, workspace) in the store and
// serves it with Terraform's `http` backend protocol, so a task's state
// follows it to whichever runner host runs it:
//
//	GET    /api/v1/state/{org}/{workspace}       the latest state (204 when none)
//	POST   /api/v1/state/{org}/{workspace}?ID=   a new state version, under the lock ID
//	POST   /api/v1/state/{org}/{workspace}/lock  take the lock (423 with the holder's info)
//	POST   .../lock?renew=true                   renew the caller's held lock (409 when not held)
//	DELETE /api/v1/state/{org}/{workspace}/lock  release the lock
//
// (lock_method POST and unlock_method DELETE on a /lock address, the
// convention GitLab's backend made common, so every route is plain REST.)
//
// Runners authenticate with HTTP basic auth: the user name is the task ID
// and the step attempt's fence (secret.StateUser), the password the
// credential secret.Box.StateCredential derives for them from the shared
// secret key. A credential opens exactly its (org, workspace), only while
// its task is not finished. (Runners hand it to no Terraform process: a
// loopback proxy on the runner adds it; see package activities.) API keys
// reach the same addresses (in the Authorization header, or as the
// basic-auth password under any user name that is not a task's, which is
// how the terraform CLI sends one): any role reads the lock and the version
// list; admin reads, writes (terraform state push) and locks state, and
// breaks locks with force=true. A key of another org gets 403, not 404:
// Terraform takes a 404 for "no state yet".
//
// Every accepted write of a new document is kept as a numbered version
// (Options.StateVersions > 0 prunes all but the newest after each write); a
// write repeating the latest document is recognised by its MD5 and stores
// nothing. Documents are sealed with the secret key at rest, bound to their
// (org, workspace).
//
// Locks are fenced: a write must name the held lock, so a Terraform process
// that lost its lock can no longer write, and a task credential may write or
// unlock only under a lock its own task holds. A task's lock is a lease: the
// runner's proxy renews it every heartbeat (2 s) while the command holding
// it runs, re-sending its lock request with renew=true (which never takes a
// lock that is not held: a holder that lost its lock cannot get it back, and
// write with it again, by renewing it), and the runner's watchdog
// kills the command before the lease (store.StateLockLease, 10 s) runs out.
// A lock held by a finished task, or by an earlier (lower-fenced) attempt of
// the calling task, is stale and is taken over, but only once it has gone
// store.StateLockLease + store.StateLockMargin (15 s) without a renewal:
// until then a lock request gets the usual 423, which Terraform retries
// within its -lock-timeout. A later attempt's lock is never stale for an
// earlier one, so an attempt still running on a host that was declared lost
// cannot take the lock back.

// Context key of a state request's caller.
const ctxStateCaller = "state_caller"

// stateCaller is who calls a state route: a task's credential or an API key.
type stateCaller struct {
	taskID string          // set for a task credential
	fence  int64           // the credential's attempt (secret.StateUser)
	key    *auth.Principal // set for an API key
}

// stateRoutes registers the state backend under /api/v1/state.
func (s *Server) stateRoutes(r *gin.Engine) {
	g := r.Group("/api/v1/state/:org/:workspace", s.authenticateState)
	g.GET("", s.getState)
	g.POST("", s.putState)
	g.GET("/lock", s.getStateLock)
	g.POST("/lock", s.lockState)
	g.DELETE("/lock", s.unlockState)
	g.GET("/versions", s.listStateVersions)
	g.GET("/versions/:version", s.getStateVersion)
}

// stateContext is the sealing context of (org, workspace)'s documents.
func stateContext(org, ws string) []byte { return []byte("state\x00" + org + "\x00" + ws) }

// authenticateState admits a task credential (basic auth) for its own
// (org, workspace) while the task is open, or an API key of the org.
func (s *Server) authenticateState(c *gin.Context) {
	org, ws := c.Param("org"), c.Param("workspace")
	if !auth.ValidName(org) || !auth.ValidName(ws) || ws == "." || ws == ".." {
		fail(c, http.StatusBadRequest, codeBadRequest, "org and workspace must be 1 to 128 letters, digits and @._:+-",
			map[string]any{detailParameter: "workspace"})
		return
	}
	user, pass, basic := c.Request.BasicAuth()
	taskID, fence, isTask := secret.ParseStateUser(user)
	if !basic || !isTask {
		// An API key: in the Authorization header, or as the basic-auth
		// password under a user name that is not a task's (how the
		// terraform CLI sends one: TF_HTTP_PASSWORD).
		var p auth.Principal
		ok := false
		if basic {
			if s.authLocked(c) {
				return
			}
			if p, ok = s.opts.Keys.Authenticate(pass); !ok {
				s.authFailed(c)
				c.Header("WWW-Authenticate", `Basic realm="terratask state"`)
				unauthorized(c, "invalid API key")
				return
			}
		} else if p, ok = s.keyPrincipal(c); !ok {
			return
		}
		if p.Org != org {
			// Not 404: Terraform takes a 404 for "no state yet". The
			// answer is the same whether the workspace exists or not.
			fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" belongs to another org", nil)
			return
		}
		if !s.keyReachesWorkspace(c, p, org, ws) {
			return
		}
		c.Set(ctxPrincipal, p)
		c.Set(ctxStateCaller, stateCaller{key: &p})
		c.Next()
		return
	}
	// A task credential is checked even while the address is locked out
	// (see hardening.go); a wrong one counts.
	c.Header("WWW-Authenticate", `Basic realm="terratask state"`)
	if !s.checkStateCredential(pass, user, org, ws) {
		s.authFailed(c)
		fail(c, http.StatusUnauthorized, codeUnauthorized, "invalid state credential", nil)
		return
	}
	t, err := s.opts.Store.GetTask(c.Request.Context(), org, taskID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusUnauthorized, codeUnauthorized, "invalid state credential: no such task", nil)
		return
	case err != nil:
		s.opts.Logger.Error("state: reading the task", zap.String("task_id", taskID), zap.Error(err))
		internal(c)
		return
	case t.Status.Terminal():
		fail(c, http.StatusForbidden, codeForbidden, "the state credential of task "+taskID+" expired: the task is "+string(t.Status), nil)
		return
	}
	c.Set(ctxPrincipal, auth.Principal{Name: "task:" + taskID, Org: org, Role: auth.RoleViewer})
	c.Set(ctxStateCaller, stateCaller{taskID: taskID, fence: fence})
	c.Next()
}

func caller(c *gin.Context) stateCaller { return c.MustGet(ctxStateCaller).(stateCaller) }

// allowState checks what an API key may do on a state route; task
// credentials may do everything on their workspace, except what keys only
// do (keyOnly).
func allowState(c *gin.Context, a auth.Action, keyOnly bool) bool {
	sc := caller(c)
	if sc.key == nil {
		if keyOnly {
			fail(c, http.StatusForbidden, codeForbidden, "a task's state credential may not do this; use an API key", nil)
			return false
		}
		return true
	}
	return allow(c, a)
}

// allowWrite admits task credentials and admin keys to the routes that
// change state or its lock.
func allowWrite(c *gin.Context) bool {
	if caller(c).key == nil {
		return true
	}
	return allow(c, auth.ActionWriteState)
}

// checkStateCredential checks a task's state credential against its org's
// key: the runners of that org derive it, no other org's can.
func (s *Server) checkStateCredential(pass, user, org, ws string) bool {
	if s.opts.Secrets == nil {
		return false
	}
	box, err := s.opts.Secrets.Org(org)
	return err == nil && box.CheckStateCredential(pass, user, org, ws)
}
