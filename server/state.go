package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
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
// unlock only under a lock its own task holds. A lock held by a finished
// task, or by an earlier (lower-fenced) attempt of the calling task, is stale
// and is taken over; a later attempt's lock is never stale for an earlier
// one, so an attempt still running on a host that was declared lost cannot
// take the lock back.

// Context key of a state request's caller.
const ctxStateCaller = "state_caller"

// stateCaller is who calls a state route: a task's credential or an API key.
type stateCaller struct {
	taskID string          // set for a task credential
	fence  int64           // the credential's attempt (secret.StateUser)
	key    *auth.Principal // set for an API key
}

// maxLockInfoBytes bounds a lock request's body (Terraform's lock info).
const maxLockInfoBytes = 64 << 10

// maxStateWrites bounds the state documents a server reads at once, and
// stateReadTimeout how long one may take to arrive.
const (
	maxStateWrites   = 4
	stateReadTimeout = 2 * time.Minute
)

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
			if p, ok = s.opts.Keys.Authenticate(pass); !ok {
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
		c.Set(ctxPrincipal, p)
		c.Set(ctxStateCaller, stateCaller{key: &p})
		c.Next()
		return
	}
	c.Header("WWW-Authenticate", `Basic realm="terratask state"`)
	if s.opts.Secrets == nil || !s.opts.Secrets.CheckStateCredential(pass, user, org, ws) {
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

func (s *Server) getState(c *gin.Context) {
	if !allowState(c, auth.ActionReadState, false) {
		return
	}
	v, err := s.opts.Store.GetState(c.Request.Context(), c.Param("org"), c.Param("workspace"))
	if errors.Is(err, store.ErrNotFound) {
		c.Status(http.StatusNoContent)
		return
	}
	s.serveStateVersion(c, v, err)
}

func (s *Server) getStateVersion(c *gin.Context) {
	if !allowState(c, auth.ActionReadState, true) {
		return
	}
	n, err := strconv.ParseInt(c.Param("version"), 10, 64)
	if err != nil || n < 1 {
		badParameter(c, "version", "version: must be a version number from 1")
		return
	}
	v, err := s.opts.Store.GetStateVersion(c.Request.Context(), c.Param("org"), c.Param("workspace"), n)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, codeNotFound, fmt.Sprintf("no state version %d", n), map[string]any{"version": n})
		return
	}
	s.serveStateVersion(c, v, err)
}

// serveStateVersion answers a state document, opened.
func (s *Server) serveStateVersion(c *gin.Context, v store.StateVersion, err error) {
	if err != nil {
		s.opts.Logger.Error("state: reading", zap.Error(err))
		internal(c)
		return
	}
	doc, err := s.opts.Secrets.OpenBytes(v.Data, stateContext(v.Org, v.Workspace))
	if err != nil {
		s.opts.Logger.Error("state: opening a stored version", zap.String("org", v.Org), zap.String("workspace", v.Workspace),
			zap.Int64("version", v.Version), zap.Error(err))
		internal(c)
		return
	}
	sum := md5.Sum(doc)
	c.Header("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	c.Header("X-State-Version", strconv.FormatInt(v.Version, 10))
	c.Data(http.StatusOK, "application/json", doc)
}

// stateDocument is what the server reads of a state document.
type stateDocument struct {
	Serial  *int64  `json:"serial"`
	Lineage *string `json:"lineage"`
}

func (s *Server) putState(c *gin.Context) {
	if !allowWrite(c) {
		return
	}
	org, ws := c.Param("org"), c.Param("workspace")
	q, ok := query(c)
	if !ok {
		return
	}
	lockID, _ := single(q, "ID")
	if s.foreignLock(c, lockID) {
		return
	}
	// Documents are held in memory while they are checked and sealed:
	// bound how many are, and how long a slow client may take to send one.
	select {
	case s.stateWrites <- struct{}{}:
		defer func() { <-s.stateWrites }()
	case <-c.Request.Context().Done():
		return
	}
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(stateReadTimeout))
	doc, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxStateBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("state exceeds %d bytes", s.opts.MaxStateBytes),
				map[string]any{"limit_bytes": s.opts.MaxStateBytes})
			return
		}
		fail(c, http.StatusBadRequest, codeBadRequest, "could not read the request body", nil)
		return
	}
	sum := md5.Sum(doc)
	if h := c.GetHeader("Content-MD5"); h != "" {
		want, err := base64.StdEncoding.DecodeString(h)
		if err != nil || !bytes.Equal(want, sum[:]) {
			badHeader(c, "Content-MD5", "Content-MD5: does not match the body")
			return
		}
	}
	var sd stateDocument
	if err := json.Unmarshal(doc, &sd); err != nil || sd.Serial == nil || sd.Lineage == nil {
		fail(c, http.StatusBadRequest, codeBadRequest, "the body is not a Terraform state document (a JSON object with serial and lineage)", nil)
		return
	}
	sealed, err := s.opts.Secrets.SealBytes(doc, stateContext(org, ws))
	if err != nil {
		s.opts.Logger.Error("state: sealing", zap.Error(err))
		internal(c)
		return
	}
	v, err := s.opts.Store.PutState(c.Request.Context(), store.StateVersion{
		Org: org, Workspace: ws, Serial: *sd.Serial, Lineage: *sd.Lineage,
		MD5: hex.EncodeToString(sum[:]), Size: int64(len(doc)), TaskID: caller(c).taskID, Data: sealed,
	}, lockID)
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked):
		s.lockConflict(c, locked, "write state")
		return
	case err != nil:
		s.opts.Logger.Error("state: writing", zap.Error(err))
		internal(c)
		return
	}
	if keep := s.opts.StateVersions; keep > 0 {
		// Best effort: the write stands, the next one prunes again.
		if _, err := s.opts.Store.PruneStateVersions(c.Request.Context(), org, ws, keep); err != nil {
			s.opts.Logger.Warn("state: pruning versions", zap.String("org", org), zap.String("workspace", ws), zap.Error(err))
		}
	}
	c.JSON(http.StatusOK, api.StateVersionOf(v))
}

// lockConflict answers 423 Locked with the holder's lock info, which
// Terraform shows (or 409 when the named lock is not held at all).
func (s *Server) lockConflict(c *gin.Context, locked *store.LockedError, what string) {
	if locked.Held.ID == "" {
		fail(c, http.StatusConflict, codeConflict, "could not "+what+": the state is not locked under the lock ID given (the lock was released or broken)", nil)
		return
	}
	info := locked.Held.Info
	if !json.Valid(info) {
		info, _ = json.Marshal(map[string]string{"ID": locked.Held.ID})
	}
	c.Abort()
	c.Data(http.StatusLocked, "application/json", info)
}

// lockInfo is what the server reads of Terraform's lock info.
type lockInfo struct {
	ID string `json:"ID"`
}

// readLockInfo reads a lock request's body; it answers 400 itself.
func readLockInfo(c *gin.Context) ([]byte, lockInfo, bool) {
	var li lockInfo
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxLockInfoBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("lock info exceeds %d bytes", maxLockInfoBytes), nil)
		return nil, li, false
	case err != nil:
		fail(c, http.StatusBadRequest, codeBadRequest, "could not read the request body", nil)
		return nil, li, false
	}
	if err := json.Unmarshal(body, &li); err != nil || !validLockID(li.ID) {
		fail(c, http.StatusBadRequest, codeBadRequest, "the body must be Terraform's lock info: a JSON object with an ID of 1 to 256 printable ASCII characters",
			map[string]any{detailField: "ID"})
		return nil, li, false
	}
	return body, li, true
}

// validLockID accepts Terraform's lock IDs (UUIDs) and other printable ASCII.
func validLockID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// foreignLock answers 423 when a task credential names a lock that another
// holder took: a task writes and unlocks under its own locks only, even
// knowing another's lock ID (any viewer can read it). It reports whether it
// answered.
func (s *Server) foreignLock(c *gin.Context, lockID string) bool {
	sc := caller(c)
	if sc.key != nil || lockID == "" {
		return false
	}
	held, err := s.opts.Store.GetStateLock(c.Request.Context(), c.Param("org"), c.Param("workspace"))
	if err != nil || held.ID != lockID || held.TaskID == sc.taskID {
		return false
	}
	s.lockConflict(c, &store.LockedError{Held: held}, "use the lock")
	return true
}

func (s *Server) lockState(c *gin.Context) {
	if !allowWrite(c) {
		return
	}
	body, li, ok := readLockInfo(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	sc := caller(c)
	org, ws, taskID := c.Param("org"), c.Param("workspace"), sc.taskID
	l := store.StateLock{Org: org, Workspace: ws, ID: li.ID, TaskID: taskID, Fence: sc.fence, Info: body}
	err := s.opts.Store.LockState(ctx, l)
	var locked *store.LockedError
	if errors.As(err, &locked) {
		if stale, why := s.staleLock(ctx, locked.Held, sc); stale {
			// Break exactly the stale lock (a compare-and-delete), then
			// take it; a lock taken meanwhile by someone else wins.
			if _, err = s.opts.Store.UnlockState(ctx, org, ws, locked.Held.ID); err == nil {
				s.opts.Logger.Warn("state: took over a stale lock", zap.String("org", org), zap.String("workspace", ws),
					zap.String("task_id", taskID), zap.String("stale_lock", locked.Held.ID), zap.String("holder", locked.Held.TaskID), zap.String("why", why))
				err = s.opts.Store.LockState(ctx, l)
			}
		}
	}
	switch {
	case errors.As(err, &locked):
		s.lockConflict(c, locked, "lock state")
		return
	case err != nil:
		s.opts.Logger.Error("state: locking", zap.Error(err))
		internal(c)
		return
	}
	c.Data(http.StatusOK, "application/json", body)
}

// staleLock reports whether held may be taken over by the caller: it was
// taken by an earlier (or the same) attempt of the caller's task (the
// workflow runs one attempt at a time, so that attempt is gone), or by a
// task that has finished. Locks taken outside tasks are never stale, and a
// lock of a later attempt of the same task is never stale for an earlier one.
func (s *Server) staleLock(ctx context.Context, held store.StateLock, sc stateCaller) (bool, string) {
	switch {
	case held.TaskID == "":
		return false, ""
	case held.TaskID == sc.taskID && held.Fence <= sc.fence:
		return true, "an earlier attempt of the same task"
	case held.TaskID == sc.taskID:
		// A later attempt holds it: the caller is a superseded attempt
		// still running somewhere, and must not take it back.
		return false, ""
	}
	t, err := s.opts.Store.GetTask(ctx, held.Org, held.TaskID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, "its task does not exist"
	case err != nil:
		return false, ""
	case t.Status.Terminal():
		return true, "its task is " + string(t.Status)
	}
	return false, ""
}

func (s *Server) unlockState(c *gin.Context) {
	org, ws := c.Param("org"), c.Param("workspace")
	q, ok := query(c)
	if !ok || !allowWrite(c) {
		return
	}
	id := ""
	if v, _ := single(q, "force"); v == "true" && caller(c).key != nil {
		// An admin breaks whatever lock is held.
	} else {
		_, li, ok := readLockInfo(c)
		if !ok || s.foreignLock(c, li.ID) {
			return
		}
		id = li.ID
	}
	released, err := s.opts.Store.UnlockState(c.Request.Context(), org, ws, id)
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked):
		s.lockConflict(c, locked, "unlock state")
		return
	case err != nil:
		s.opts.Logger.Error("state: unlocking", zap.Error(err))
		internal(c)
		return
	}
	if id == "" && released.ID != "" {
		s.opts.Logger.Warn("state: lock broken", zap.String("org", org), zap.String("workspace", ws),
			zap.String("lock", released.ID), zap.String("holder", released.TaskID), zap.String("by", principal(c).Name))
	}
	c.JSON(http.StatusOK, api.StateLockOf(released))
}

func (s *Server) getStateLock(c *gin.Context) {
	if !allowState(c, auth.ActionRead, false) {
		return
	}
	l, err := s.opts.Store.GetStateLock(c.Request.Context(), c.Param("org"), c.Param("workspace"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.opts.Logger.Error("state: reading the lock", zap.Error(err))
		internal(c)
		return
	}
	c.JSON(http.StatusOK, api.StateLockOf(l))
}

var versionParams = map[string]bool{"limit": true, "page": true}

func (s *Server) listStateVersions(c *gin.Context) {
	if !allowState(c, auth.ActionRead, true) {
		return
	}
	q, ok := query(c)
	if !ok {
		return
	}
	for k, vs := range q {
		if !versionParams[k] {
			badParameter(c, k, k+": unknown query parameter (allowed: limit, page)")
			return
		}
		if len(vs) > 1 {
			badParameter(c, k, k+": may be given once")
			return
		}
	}
	limit, page := defaultListLimit, 1
	if err := parsePaging(q, &limit, &page); err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	vs, total, err := s.opts.Store.ListStateVersions(c.Request.Context(), c.Param("org"), c.Param("workspace"), limit, (page-1)*limit)
	if err != nil {
		s.opts.Logger.Error("state: listing versions", zap.Error(err))
		internal(c)
		return
	}
	c.Header("X-Total-Count", strconv.Itoa(total))
	if link := pageLinks(c.Request.URL, page, limit, total); link != "" {
		c.Header("Link", link)
	}
	out := make([]api.StateVersion, 0, len(vs))
	for _, v := range vs {
		out = append(out, api.StateVersionOf(v))
	}
	c.JSON(http.StatusOK, out)
}
