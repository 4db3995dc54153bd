package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.uber.org/zap"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Idempotent creates keep no table of their own: the task ID is derived from
// the org and the Idempotency-Key, so Temporal's workflow-ID uniqueness is the
// lock, and a keyed digest of the request body rides in the workflow's memo
// so a replay can tell "same request" from "same key, other request".
//
// "Same request" means a byte-identical body: a client that retries sends the
// bytes it sent before. Two bodies that differ only in key order or spacing
// are different requests (409).
const (
	// HeaderIdempotencyKey is the optional create header.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotentReplayed is "true" on a create answered from an
	// earlier request with the same key.
	HeaderIdempotentReplayed = "Idempotent-Replayed"

	maxIdempotencyKeyLen = 255

	// memoRequestDigest is the memo field holding the hex HMAC-SHA256 of the
	// create body. Keyed, so a body's low-entropy secrets cannot be guessed
	// from the memo by someone who can read Temporal.
	memoRequestDigest = "terratask_request_sha256"
	// memoCreatedAt keeps the task's created_at, so a replay that arrives
	// before the store has the row can still answer the task as created.
	memoCreatedAt = "terratask_created_at"
)

// DeriveIDKey derives the key of idempotent task IDs from the secret key
// that seals task secrets, so every replica derives the same IDs without
// another secret to distribute.
func DeriveIDKey(secretKey []byte) []byte {
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte("terratask idempotency v1"))
	return m.Sum(nil)
}

// idempotencyKey reads the Idempotency-Key header: absent is ok ("", nil);
// present, it must be given once and be 1-255 printable ASCII characters.
func idempotencyKey(h http.Header) (string, error) {
	vs, ok := h[http.CanonicalHeaderKey(HeaderIdempotencyKey)]
	if !ok {
		return "", nil
	}
	if len(vs) != 1 {
		return "", errors.New("Idempotency-Key may be given once")
	}
	if !validIdempotencyKey(vs[0]) {
		return "", errors.New("Idempotency-Key must be 1-255 printable ASCII characters")
	}
	return vs[0], nil
}

func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotentTaskID is "task-" and 26 lower-case base32 characters of the
// first 16 bytes of HMAC-SHA256(idKey, org NUL key): stable for one org and
// key, unguessable without the server's key, and another org's key never
// lands on the same ID.
func idempotentTaskID(idKey []byte, org, key string) string {
	m := hmac.New(sha256.New, idKey)
	m.Write([]byte(org))
	m.Write([]byte{0})
	m.Write([]byte(key))
	sum := m.Sum(nil)
	return "task-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}

// requestDigest is the memo's digest of a create body.
func requestDigest(idKey, body []byte) string {
	m := hmac.New(sha256.New, idKey)
	m.Write([]byte("request\x00"))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// idempotencyConflict is the 409 of a key reused with another body.
func idempotencyConflict(c *gin.Context, msg string) {
	fail(c, http.StatusConflict, codeConflict, msg, map[string]any{detailHeader: HeaderIdempotencyKey})
}

// replay answers a create whose idempotent task ID is taken: with the task
// when the workflow's memo holds the same request digest, else 409.
func (s *Server) replay(c *gin.Context, row store.Task, digest string) {
	ctx := c.Request.Context()
	desc, err := s.opts.Temporal.DescribeWorkflowExecution(ctx, row.ID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			// The store knows the task but Temporal no longer keeps its
			// workflow (past the namespace's retention): the request cannot
			// be compared, and the ID cannot be used again.
			idempotencyConflict(c, "this Idempotency-Key was used for a task whose request is no longer kept; use a new key")
			return
		}
		s.opts.Logger.Error("describing task workflow", zap.String("task_id", row.ID), zap.Error(err))
		unavailable(c, "create the task")
		return
	}
	var stored, created string
	if memo := desc.GetWorkflowExecutionInfo().GetMemo().GetFields(); memo != nil {
		dc := s.opts.DataConverter
		if p := memo[memoRequestDigest]; p != nil {
			_ = dc.FromPayload(p, &stored)
		}
		if p := memo[memoCreatedAt]; p != nil {
			_ = dc.FromPayload(p, &created)
		}
	}
	if stored == "" || !hmac.Equal([]byte(stored), []byte(digest)) {
		idempotencyConflict(c, "this Idempotency-Key was already used with another request body")
		return
	}
	existing, err := s.opts.Store.GetTask(ctx, row.Org, row.ID)
	switch {
	case err == nil:
		row = existing
	case errors.Is(err, store.ErrNotFound):
		// The first request started the workflow but has not indexed the
		// task yet (or died before it could): answer from the request, which
		// is byte-identical, and index it now.
		if t, err := time.Parse(time.RFC3339Nano, created); err == nil {
			row.CreatedAt, row.UpdatedAt = t.UTC(), t.UTC()
		}
		if err := s.opts.Store.CreateTask(ctx, row); err != nil {
			s.opts.Logger.Warn("indexing replayed task", zap.String("task_id", row.ID), zap.Error(err))
		}
	default:
		s.opts.Logger.Error("reading task", zap.String("task_id", row.ID), zap.Error(err))
		internal(c)
		return
	}
	c.Header(HeaderIdempotentReplayed, "true")
	c.JSON(http.StatusOK, viewOf(s.fresh(c, row), false))
}

// memoOf is the memo of an idempotent task's workflow.
func memoOf(digest string, createdAt time.Time) map[string]any {
	return map[string]any{memoRequestDigest: digest, memoCreatedAt: createdAt.UTC().Format(time.RFC3339Nano)}
}

// isAlreadyStarted reports a workflow ID already taken.
func isAlreadyStarted(err error) bool {
	var as *serviceerror.WorkflowExecutionAlreadyStarted
	return errors.As(err, &as)
}

// pendingRow is the index row of a task just created.
func pendingRow(in task.Input) store.Task {
	return store.Task{
		ID: in.ID, Org: in.Org, Name: in.Name, Description: in.Description, AgentID: in.AgentID,
		RunnerID: in.RunnerID, Status: task.StatusPending, Metadata: in.Metadata,
		TotalSteps: len(in.Params.EffectiveAction().Steps()), CreatedAt: in.CreatedAt, UpdatedAt: in.CreatedAt,
	}
}
