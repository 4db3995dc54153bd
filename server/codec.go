package server

import (
	"bytes"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/terratask/terratask/auth"
)

// The codec routes decode and encode Temporal payloads for a Temporal Web UI
// or the temporal CLI (--codec-endpoint), with the same codec the processes
// use, so people allowed to see payloads can read them while Temporal's
// database holds only ciphertext.
const (
	codecPrefix = "/api/v1/codec/"
	// maxCodecBody bounds a codec request: a batch of payloads the Web UI
	// shows at once (one payload is at most 2 MiB in Temporal).
	maxCodecBody = 16 << 20
)

// codecCORS answers the CORS preflight of the codec routes for the allowed
// origins (a Temporal Web UI calls the codec from the browser) and adds the
// CORS headers to their answers. It runs before routing: a preflight is an
// OPTIONS request, which no route has.
func (s *Server) codecCORS(c *gin.Context) {
	if !strings.HasPrefix(c.Request.URL.Path, codecPrefix) {
		c.Next()
		return
	}
	origin := c.GetHeader("Origin")
	allowed := origin != "" && (contains(s.opts.CodecOrigins, origin) || s.opts.CodecSession != nil && contains(s.opts.CodecSession.Origins, origin))
	if allowed {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
	}
	if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
		if !allowed {
			fail(c, http.StatusForbidden, codeForbidden, "origin not allowed to call the codec (see --codec-cors-origin)", map[string]any{detailHeader: "Origin"})
			c.Abort()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

// codec serves POST /api/v1/codec/encode and /decode with the SDK's payload
// codec HTTP handler: to admin keys bound to no agent, on their own org's
// payloads only (another org's pass through still encrypted), or to
// terratask dev's own Web UI with its session cookie (see CodecSession), on
// the payloads of dev's admin key's org.
func (s *Server) codec(c *gin.Context) {
	if s.opts.Codec == nil {
		fail(c, http.StatusNotFound, codeNotFound, "this server has no payload codec", nil)
		return
	}
	org, ok := s.codecSessionOrg(c)
	if !ok {
		p, ok := s.keyPrincipal(c)
		if !ok {
			return
		}
		c.Set(ctxPrincipal, p)
		if p.Role != auth.RoleAdmin {
			fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" with role "+string(p.Role)+" may not decode or encode payloads: the codec needs an admin key", nil)
			return
		}
		if p.Agent != "" {
			fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" is bound to agent "+p.Agent+": payloads are per org, so the codec needs a key bound to no agent", nil)
			return
		}
		org = p.Org
	}
	pc, err := s.opts.Codec.ForOrg(org)
	if err != nil {
		s.opts.Logger.Error("codec: the org's key", zap.Error(err))
		internal(c)
		return
	}
	if !requireJSON(c) {
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxCodecBody)
	rec := &bufferedWriter{header: http.Header{}}
	converter.NewPayloadCodecHTTPHandler(pc).ServeHTTP(rec, c.Request)
	if rec.code == 0 || rec.code == http.StatusOK {
		c.Data(http.StatusOK, "application/json", rec.body.Bytes())
		return
	}
	msg := strings.TrimSpace(rec.body.String())
	if strings.Contains(msg, "request body too large") {
		fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, "request body exceeds the codec's limit", map[string]any{"limit_bytes": maxCodecBody})
		return
	}
	if msg == "" {
		msg = http.StatusText(rec.code)
	}
	// The handler's messages name what failed (bad JSON, a payload under an
	// unknown key); they quote no payload data.
	badField(c, "payloads", "cannot "+strings.TrimPrefix(c.FullPath(), codecPrefix)+" the payloads: "+firstLineOf(msg))
}

// CodecSession is how terratask dev's own Web UI calls the codec: the UI's
// pages run in the browser and cannot send an API key, and anything on the
// machine, task code included (it shares the host's network), can send any
// Origin from loopback, so neither the origin nor the address vouches for a
// caller. Instead dev prints a URL with a random token once at start;
// opening it (GET /api/v1/codec/session?token=...) sets an HttpOnly
// cookie for the codec routes and redirects to the UI, and the UI's calls
// (with credentials, from one of Origins) carry it. The session decodes the
// payloads of Org (dev's admin key's) only.
type CodecSession struct {
	Token   string
	Org     string
	UIURL   string
	Origins []string
}

// codecSessionCookie names the session's cookie.
const codecSessionCookie = "terratask_codec_session"

// codecSessionOrg reports the session's org when the request carries the
// session's cookie from one of its origins.
func (s *Server) codecSessionOrg(c *gin.Context) (string, bool) {
	cs := s.opts.CodecSession
	if cs == nil || cs.Token == "" || !contains(cs.Origins, c.GetHeader("Origin")) {
		return "", false
	}
	ck, err := c.Request.Cookie(codecSessionCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(cs.Token)) != 1 {
		return "", false
	}
	return cs.Org, true
}

// openCodecSession answers GET /api/v1/codec/session?token=...: the token
// dev printed sets the session cookie and leads to the Web UI.
func (s *Server) openCodecSession(c *gin.Context) {
	cs := s.opts.CodecSession
	if cs == nil {
		fail(c, http.StatusNotFound, codeNotFound, "no codec session here: only terratask dev's own Web UI has one", nil)
		return
	}
	if s.authLocked(c) {
		return
	}
	token := c.Query("token")
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(cs.Token)) != 1 {
		s.authFailed(c)
		fail(c, http.StatusUnauthorized, codeUnauthorized, "a codec session needs the token terratask dev printed at start", map[string]any{detailParameter: "token"})
		return
	}
	// Kept a day (a browser restart keeps it); dev's next start makes a
	// new token, which ends it.
	http.SetCookie(c.Writer, &http.Cookie{Name: codecSessionCookie, Value: cs.Token, Path: codecPrefix, MaxAge: 24 * 60 * 60,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Request.TLS != nil})
	c.Redirect(http.StatusSeeOther, cs.UIURL)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// bufferedWriter keeps a handler's answer so errors can be rewritten into
// the API's error body.
type bufferedWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header { return w.header }
func (w *bufferedWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}

// newCodecHandler is the SDK's payload codec HTTP handler.

// OrgCodec is the control plane's payload codec (control.Codec): as a
// whole it reads every org's payloads (terratask dev's own Web UI on
// loopback); ForOrg is what a key of one org may use: it encodes under that
// org's key and decodes that org's payloads only, returning every other
// payload as it is, still encrypted.
type OrgCodec interface {
	converter.PayloadCodec
	ForOrg(org string) (converter.PayloadCodec, error)
}

// metrics serves GET /metrics (public, like /healthz: counts only, no task
// IDs or names) when this listener serves metrics.
func (s *Server) metrics(c *gin.Context) {
	if s.opts.Metrics == nil {
		fail(c, http.StatusNotFound, codeNotFound, "metrics are served on another listener (--metrics-address)", nil)
		return
	}
	s.opts.Metrics.ServeHTTP(c.Writer, c.Request)
}
