// Package server is terratask's HTTP API: a gin router that maps the Tasks API
// onto Temporal (create to StartWorkflow, cancel to workflow cancellation,
// status to the workflow's state query) and onto the store (lists and logs).
//
// The server never imports the runner's activities: it speaks to tasks only
// through Temporal and the store.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Options configure the API.
type Options struct {
	Temporal client.Client
	Store    store.Store
	Keys     *auth.Keyring
	Secrets  *master.Box
	Logger   *zap.Logger
	// IDKey keys the task IDs derived from an Idempotency-Key (see
	// DeriveIDKey). It must be the same on every replica and across
	// restarts; empty, a random per-process key is used, so an
	// Idempotency-Key only holds within one process.
	IDKey []byte
	// MaxBodyBytes bounds request bodies (default 2 MiB).
	MaxBodyBytes int64
	// MaxStateBytes bounds a Terraform state document written to the
	// state backend (default 64 MiB).
	MaxStateBytes int64
	// StateVersions is how many state versions are kept per workspace;
	// older ones are pruned after each write. 0 keeps all.
	StateVersions int
	// RunnerWait is how long a task waits for its runner before failing
	// with runner_unavailable (default 24h).
	RunnerWait time.Duration
	// ApprovalWait is how long a task waits for a decision on its plan
	// when its approval_timeout says nothing (default 24h).
	ApprovalWait time.Duration
	// QueryTimeout bounds a live state query before the store answers
	// instead (default 2s).
	QueryTimeout time.Duration
	// StateTTL is how long the answer of a running task's state query is
	// reused for further status and task requests (default 250ms; negative
	// disables). Whether a task is finished always comes from the store.
	StateTTL time.Duration
	// CancelWait is how long a cancel request waits for the task to reach
	// cancelled before it answers "cancelling" (default 3s).
	CancelWait time.Duration
	// ForceCoolOff is how long after a plain cancel a force cancel is
	// allowed (default 10s).
	ForceCoolOff time.Duration
	// Isolation, when set, is the sandbox status of the runners in this
	// process (terratask dev), shown in /readyz's checks.
	Isolation string
	// MCP, when set, is served at /mcp behind the API's key check: the
	// Model Context Protocol endpoint for AI agents (package mcp, mounted
	// by internal/app, so server does not import it).
	MCP http.Handler
	// DataConverter decodes the payloads the server reads itself (the memo
	// of idempotent creates); it must be the workers' (default: Temporal's).
	DataConverter converter.DataConverter
	// Metrics serves GET /metrics; nil: metrics are served elsewhere (404).
	Metrics http.Handler
	// Codec serves POST /api/v1/codec/{encode,decode} to admin keys, each
	// on its own org's payloads only (ForOrg); nil: 404.
	Codec OrgCodec
	// CodecOrigins are browser origins (a Temporal Web UI) allowed to call
	// the codec routes (CORS).
	CodecOrigins []string
	// CodecSession lets terratask dev's own Web UI call the codec without
	// an API key, with a session cookie (see codec.go); nil: none.
	CodecSession *CodecSession
	// Hub wakes the followers of log and event streams (see package
	// events); nil: the server feeds one of its own from Store until
	// CloseStreams.
	Hub *events.Hub
	// NotifyAllow lists the hosts a task's notify URL may name (the
	// server's --notify-allow); empty, every notify is refused.
	NotifyAllow events.AllowList
	// WebhookAllow lists the hosts a webhook may reach although they are
	// not public (the server's --webhook-allow): a webhook URL whose host
	// is, or resolves to, a loopback, private, link-local, unspecified,
	// shared, multicast or reserved address is refused unless listed.
	WebhookAllow events.AllowList
	// SourceAllow lists the hosts a task's remote module source may name
	// (the server's --source-allow); empty, every remote source is refused.
	SourceAllow events.AllowList
	// Resolve looks up webhook hosts (default: the system resolver); tests
	// replace it.
	Resolve events.Resolver
	// Sender sends the ping of a new webhook (default: one through the
	// guard of WebhookAllow and Resolve).
	Sender *events.Sender
	// Now is the server's clock: the leases of state locks run out, the
	// failed-key throttle's windows pass and the state cache's answers
	// expire against it (default time.Now; tests move it on). The store
	// stamps renewals with time.Now.
	Now func() time.Time
	// WriteTimeout bounds the time to answer a request, from its start
	// (default DefaultWriteTimeout; negative: none). Streams have no
	// deadline while idle: each of their writes must complete within it.
	// The http.Server's own WriteTimeout stays 0 (see hardening.go).
	WriteTimeout time.Duration
	// AuthFailures failed key checks from one client address within
	// AuthWindow lock the address out for AuthWindow: 429 with
	// Retry-After (defaults DefaultAuthFailures and DefaultAuthWindow;
	// negative AuthFailures: no throttling).
	AuthFailures int
	AuthWindow   time.Duration
	// MaxStreamsPerKey caps the streams (SSE follows, /mcp requests) one
	// API key has open on this server (default DefaultMaxStreamsPerKey;
	// negative: no cap).
	MaxStreamsPerKey int
	// OIDC, when set, is the server's OIDC issuer (--oidc-issuer, issue
	// 22): its discovery document and JWKS are served, publicly, at
	// /.well-known/, and runners get their steps' tokens from it (the
	// runner API's tokens route). nil: those paths answer 404 and token
	// requests fail.
	OIDC *oidc.Issuer
}

// Server is the HTTP API.
type Server struct {
	opts   Options
	router *gin.Engine
	states *stateCache
	// policies caches the org's compiled policy sets for dry runs.
	policies policy.Cache
	// stateWrites bounds concurrent state document writes.
	stateWrites chan struct{}
	// streams tracks the open SSE streams, which CloseStreams ends.
	streams *streams
	// throttle counts failed authentications per client address; nil:
	// none.
	throttle *authThrottle
	// streamCaps counts each key's open streams.
	streamCaps *streamCaps
	// hookGuard checks webhook URLs and dials their pings.
	hookGuard *events.Guard
}

// MCPPath is where Options.MCP is served.
const MCPPath = "/mcp"

// Context keys.
const (
	ctxRequestID = "request_id"
	ctxPrincipal = "principal"
)

// New builds the router.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 2 << 20
	}
	if opts.MaxStateBytes <= 0 {
		opts.MaxStateBytes = 64 << 20
	}
	if opts.RunnerWait <= 0 {
		opts.RunnerWait = 24 * time.Hour
	}
	if opts.ApprovalWait <= 0 {
		opts.ApprovalWait = task.DefaultApprovalTimeout
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Second
	}
	if opts.StateTTL == 0 {
		opts.StateTTL = 250 * time.Millisecond
	}
	if opts.CancelWait <= 0 {
		opts.CancelWait = 3 * time.Second
	}
	if opts.ForceCoolOff <= 0 {
		opts.ForceCoolOff = 10 * time.Second
	}
	if opts.DataConverter == nil {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.AuthFailures == 0 {
		opts.AuthFailures = DefaultAuthFailures
	}
	if opts.AuthWindow <= 0 {
		opts.AuthWindow = DefaultAuthWindow
	}
	if opts.MaxStreamsPerKey == 0 {
		opts.MaxStreamsPerKey = DefaultMaxStreamsPerKey
	}
	if len(opts.IDKey) == 0 {
		opts.IDKey = make([]byte, 32)
		_, _ = rand.Read(opts.IDKey)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	s := &Server{opts: opts, router: r, states: newStateCache(opts.StateTTL, opts.Now), stateWrites: make(chan struct{}, maxStateWrites)}
	s.streams = s.newStreams()
	s.hookGuard = &events.Guard{Allow: opts.WebhookAllow, Flag: "--webhook-allow", Resolve: opts.Resolve}
	if s.opts.Sender == nil {
		s.opts.Sender = events.NewSender(0, s.hookGuard)
	}
	s.streamCaps = &streamCaps{max: opts.MaxStreamsPerKey, open: map[string]int{}}
	if opts.AuthFailures > 0 {
		s.throttle = newAuthThrottle(opts.AuthFailures, opts.AuthWindow, opts.Now)
	}

	r.Use(s.deadlines, metrics.GinMiddleware(), s.requestID, s.accessLog, s.recover, s.codecCORS)
	r.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, codeNotFound, "no route "+c.Request.Method+" "+c.Request.URL.Path, nil)
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method "+c.Request.Method+" is not allowed on "+c.Request.URL.Path, nil)
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, api.Health{Status: "ok"}) })
	r.GET("/readyz", s.ready)
	// The API's description is public: it holds no data, and clients
	// fetch it before they have a key.
	r.GET(openAPIPath, serveOpenAPI)
	r.GET("/metrics", s.metrics)
	// The codec authenticates itself: dev's own UI may call it without a key.
	r.POST(codecPrefix+"encode", s.codec)
	r.POST(codecPrefix+"decode", s.codec)
	r.GET(codecPrefix+"session", s.openCodecSession)

	api := r.Group("/api/v1", s.authenticate)
	api.GET("/tasks", s.listTasks)
	api.POST("/tasks", s.createTask)
	api.GET("/tasks/agent/:agentId", s.listTasks)
	api.GET("/tasks/runner/:runnerId", s.listTasks)
	api.GET("/tasks/:taskId", s.getTask)
	api.GET("/tasks/:taskId/status", s.getStatus)
	api.GET("/tasks/:taskId/logs", s.getLogs)
	api.PUT("/tasks/:taskId/cancel", s.cancelTask)
	api.GET("/tasks/:taskId/plan", s.getPlan)
	api.PUT("/tasks/:taskId/approve", s.decide(true))
	api.PUT("/tasks/:taskId/reject", s.decide(false))
	api.GET("/runners", s.listRunners)
	api.GET("/runners/:runnerId", s.getRunner)
	s.eventRoutes(api)
	s.scheduleRoutes(api)
	s.workspaceRoutes(api)
	s.policyRoutes(api)
	s.credentialRoutes(api)
	s.stateRoutes(r)
	s.runnerRoutes(r)
	// The OIDC issuer's discovery document and keys are public: relying
	// parties (AWS, GCP, Azure) fetch them without a key.
	r.GET(oidc.DiscoveryPath, s.wellKnown)
	r.GET(oidc.JWKSPath, s.wellKnown)
	if opts.MCP != nil {
		h := s.streamHandler(opts.MCP)
		for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
			r.Handle(m, MCPPath, s.authenticate, h)
		}
	}
	return s
}

// Handler returns the http.Handler of the API.
func (s *Server) Handler() http.Handler { return s.router }

func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if id == "" || len(id) > 128 || !idPattern.MatchString(id) {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	fields := []zap.Field{
		zap.String("request_id", c.GetString(ctxRequestID)),
		zap.String("method", c.Request.Method),
		zap.String("path", c.Request.URL.Path),
		zap.Int("status", c.Writer.Status()),
		zap.Duration("duration", time.Since(start)),
	}
	if p, ok := c.Get(ctxPrincipal); ok {
		fields = append(fields, zap.String("key", p.(auth.Principal).Name))
	}
	s.opts.Logger.Info("http request", fields...)
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.opts.Logger.Error("panic serving request", zap.String("request_id", c.GetString(ctxRequestID)), zap.Any("panic", v), zap.Stack("stack"))
			internal(c)
		}
	}()
	c.Next()
}

func (s *Server) authenticate(c *gin.Context) {
	p, ok := s.keyPrincipal(c)
	if !ok {
		return
	}
	c.Set(ctxPrincipal, p)
	// What the request sends Temporal is encrypted under the key of the
	// caller's org (control.Codec), which its runners hold.
	c.Request = c.Request.WithContext(codec.WithOrg(c.Request.Context(), p.Org))
	c.Next()
}

// keyPrincipal authenticates the request's API key; it answers the 401
// itself and reports false when there is none or it is not valid, and the
// 429 when the client's address is locked out (see hardening.go).
func (s *Server) keyPrincipal(c *gin.Context) (auth.Principal, bool) {
	if s.authLocked(c) {
		return auth.Principal{}, false
	}
	h := c.GetHeader("Authorization")
	scheme, key, ok := strings.Cut(strings.TrimSpace(h), " ")
	switch {
	case h == "":
		unauthorized(c, "missing API key: send Authorization: UserKey <key>")
		return auth.Principal{}, false
	case !ok || !(strings.EqualFold(scheme, "UserKey") || strings.EqualFold(scheme, "Bearer")):
		unauthorized(c, "Authorization must be \"UserKey <key>\" or \"Bearer <key>\"")
		return auth.Principal{}, false
	}
	p, ok := s.opts.Keys.Authenticate(strings.TrimSpace(key))
	if !ok {
		s.authFailed(c)
		unauthorized(c, "invalid API key")
		return auth.Principal{}, false
	}
	return p, true
}

// unauthorized is the 401, with the schemes the API takes.
func unauthorized(c *gin.Context, msg string) {
	c.Header("WWW-Authenticate", `UserKey realm="terratask", Bearer realm="terratask"`)
	fail(c, http.StatusUnauthorized, codeUnauthorized, msg, nil)
}

func principal(c *gin.Context) auth.Principal { return c.MustGet(ctxPrincipal).(auth.Principal) }

// allow checks the caller's role; it writes the 403 and returns false when
// the role forbids the action.
func allow(c *gin.Context, a auth.Action) bool {
	p := principal(c)
	if !p.Role.Allows(a) {
		fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" with role "+string(p.Role)+" may not do this", nil)
		return false
	}
	return true
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	switch {
	case s.opts.Store == nil:
		checks["store"] = "not configured"
		ok = false
	case s.opts.Store.Ping(ctx) != nil:
		checks["store"] = "unreachable"
		ok = false
	default:
		checks["store"] = "ok"
	}
	switch {
	case s.opts.Temporal == nil:
		checks["temporal"] = "not configured"
		ok = false
	default:
		if _, err := s.opts.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			checks["temporal"] = "unreachable"
			ok = false
		} else {
			checks["temporal"] = "ok"
		}
	}
	if s.opts.Isolation != "" {
		// Informational: auto and off still serve (the log and the
		// runner_isolation metric say so too).
		checks["isolation"] = s.opts.Isolation
	}
	if !ok {
		c.JSON(http.StatusServiceUnavailable, api.Ready{Status: "unavailable", Checks: checks})
		return
	}
	c.JSON(http.StatusOK, api.Ready{Status: "ok", Checks: checks})
}
