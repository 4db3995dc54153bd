package server

import (
	"bytes"
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
	"github.com/terratask/terratask/store"
)

// maxStateWrites bounds the state documents a server reads at once, and
// stateReadTimeout how long one may take to arrive.
const (
	maxStateWrites   = 4
	stateReadTimeout = 2 * time.Minute
)

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
	// A document may take as long to send as to receive.
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(stateTransferTimeout))
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
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Now().Add(stateReadTimeout))
	if s.opts.WriteTimeout > 0 {
		// The answer gets the usual write timeout after the upload's time.
		_ = rc.SetWriteDeadline(time.Now().Add(stateReadTimeout + s.opts.WriteTimeout))
	}
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
	c.JSON(http.StatusOK, stateVersionOf(v))
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
		out = append(out, stateVersionOf(v))
	}
	c.JSON(http.StatusOK, out)
}
