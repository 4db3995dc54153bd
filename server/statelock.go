package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
)

// maxLockInfoBytes bounds a lock request's body (Terraform's lock info).
const maxLockInfoBytes = 64 << 10

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

// lockState takes the lock (Terraform's LOCK), or with renew=true renews
// the caller's held lock: the runner's proxy re-sends its command's lock
// request so, every heartbeat, and a renewal never takes a lock that is not
// held (409) nor takes one over (423).
func (s *Server) lockState(c *gin.Context) {
	q, ok := query(c)
	if !ok || !allowWrite(c) {
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
	var err error
	var locked *store.LockedError
	if v, _ := single(q, "renew"); v == "true" {
		err = s.opts.Store.RenewStateLock(ctx, l)
		if errors.As(err, &locked) {
			s.lockConflict(c, locked, "renew the lock")
			return
		}
	} else {
		err = s.opts.Store.LockState(ctx, l)
	}
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

// staleLock reports whether held may be taken over by the caller. A lock
// of a task is a lease (store.StateLockLease): its runner renews it every
// heartbeat while the command holding it runs, and its watchdog stops the
// command before the lease runs out, so the lock is never stale until
// StateLockLease + StateLockMargin have passed since its last renewal
// (store.LockExpired, against Options.Now). A host that froze may still run
// the command: how long ago its task or attempt moved on says nothing about
// that. Then it is stale when it was taken by an earlier (or the same)
// attempt of the caller's task (the workflow runs one attempt at a time, so
// that attempt is gone), or by a task that has finished. Locks taken
// outside tasks are never stale, and a lock of a later attempt of the same
// task is never stale for an earlier one.
func (s *Server) staleLock(ctx context.Context, held store.StateLock, sc stateCaller) (bool, string) {
	now := s.opts.Now()
	switch {
	case held.TaskID == "":
		return false, ""
	case !store.LockExpired(held, now):
		// Its holder may still be running: Terraform retries within its
		// -lock-timeout, and gets the lock once the lease has run out.
		return false, ""
	case held.TaskID == sc.taskID && held.Fence <= sc.fence:
		return true, "an earlier attempt of the same task, " + silence(held, now)
	case held.TaskID == sc.taskID:
		// A later attempt holds it: the caller is a superseded attempt
		// still running somewhere, and must not take it back.
		return false, ""
	}
	t, err := s.opts.Store.GetTask(ctx, held.Org, held.TaskID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, "its task does not exist, " + silence(held, now)
	case err != nil:
		return false, ""
	case t.Status.Terminal():
		return true, "its task is " + string(t.Status) + ", " + silence(held, now)
	}
	return false, ""
}

// silence says how long held has gone without a renewal.
func silence(held store.StateLock, now time.Time) string {
	return "not renewed for " + now.Sub(held.RenewedAt).Round(time.Millisecond).String()
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
	c.JSON(http.StatusOK, stateLockOf(released))
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
	c.JSON(http.StatusOK, stateLockOf(l))
}
