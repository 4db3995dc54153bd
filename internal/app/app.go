// Package app assembles terratask's processes from its parts: `terratask dev`
// (everything in one process on an embedded Temporal server), `terratask
// server` (API and control-plane worker against an existing Temporal) and
// `terratask runner` (Terraform execution for one runner ID). Each Run
// function blocks until its context ends, then shuts down cleanly.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/mcp"
	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/postgres"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/worker"
)

// closer undoes one build step; closers run in reverse order at shutdown.
type closer struct {
	name string
	fn   func() error
}

type stack struct {
	logger  *zap.Logger
	closers []closer
}

// devOrg is the org of dev's admin key and of the runners dev starts
// itself; a server's metrics count the hosts of this org's runners.
const devOrg = "default"

func (s *stack) push(name string, fn func() error) { s.closers = append(s.closers, closer{name, fn}) }

func (s *stack) closeAll() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		c := s.closers[i]
		if err := c.fn(); err != nil {
			s.logger.Warn("shutdown step failed", zap.String("step", c.name), zap.Error(err))
		}
	}
	s.closers = nil
}

// openStore opens the store named by a URL or path: a plain path or
// sqlite://PATH is SQLite.
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	switch {
	case isPostgres(dsn):
		return postgres.Open(ctx, dsn)
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating store dir: %w", err)
		}
		return sqlite.Open(ctx, path)
	}
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Migrate applies the store's migrations: PostgreSQL and SQLite both migrate
// at open, so opening is enough.
func Migrate(ctx context.Context, dsn string) error {
	if isPostgres(dsn) {
		return postgres.Migrate(ctx, dsn)
	}
	st, err := openStore(ctx, dsn)
	if err != nil {
		return err
	}
	return st.Close()
}

// dialTemporal connects an SDK client, retrying until ctx ends so a process
// may start before its Temporal server.
func dialTemporal(ctx context.Context, opts client.Options) (client.Client, error) {
	for {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to Temporal at %s: %w", opts.HostPort, err)
		case <-time.After(time.Second):
		}
	}
}

// zapAdapter lets the Temporal SDK log through zap.
type zapAdapter struct{ l *zap.SugaredLogger }

func newSDKLogger(l *zap.Logger) sdklog.Logger {
	return zapAdapter{l.WithOptions(zap.IncreaseLevel(zap.WarnLevel)).Sugar().Named("temporal-sdk")}
}
func (z zapAdapter) Debug(msg string, kv ...any) { z.l.Debugw(msg, kv...) }
func (z zapAdapter) Info(msg string, kv ...any)  { z.l.Infow(msg, kv...) }
func (z zapAdapter) Warn(msg string, kv ...any)  { z.l.Warnw(msg, kv...) }
func (z zapAdapter) Error(msg string, kv ...any) { z.l.Errorw(msg, kv...) }

// hostID returns this host's stable ID for a runner data dir: the hostname
// and a random suffix kept in DIR/host-id, so a restarted process takes back
// the tasks pinned to it.
func hostID(dir string) (string, error) {
	path := filepath.Join(dir, "host-id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	name, _ := os.Hostname()
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	if name == "" {
		name = "host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := name + "-" + hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing host id: %w", err)
	}
	return id, nil
}

// startRunner builds and starts the workers of one runner.
func startRunner(c client.Client, r *activities.Runner, stopTimeout time.Duration) ([]sdkworker.Worker, error) {
	ws := worker.NewRunner(c, r, sdkworker.Options{WorkerStopTimeout: stopTimeout})
	if err := worker.StartAll(ws); err != nil {
		return nil, err
	}
	return ws, nil
}

// hostPublisher keeps runner hosts' rows of the store current (their
// engines) until stop; see worker.PublishHost.
type hostPublisher struct {
	st     worker.HostPublisher
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newHostPublisher(st worker.HostPublisher) *hostPublisher {
	ctx, cancel := context.WithCancel(context.Background())
	return &hostPublisher{st: st, ctx: ctx, cancel: cancel}
}

// publish writes r's host row now, then keeps it current.
func (p *hostPublisher) publish(r *activities.Runner) {
	started := time.Now()
	worker.PublishHostOnce(p.ctx, p.st, r, started, r.Logger)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		worker.PublishHost(p.ctx, p.st, r, started, r.Logger)
	}()
}

func (p *hostPublisher) stop() error {
	p.cancel()
	p.wg.Wait()
	return nil
}

// serveHTTP listens on addr and serves h until Shutdown.
func serveHTTP(addr string, h http.Handler, logger *zap.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := serveListener(ln, h, logger)
	return srv, ln.Addr().String(), nil
}

// serveListener serves h on ln until Shutdown (the metrics listener: it
// streams nothing, so the http.Server's own write timeout holds).
func serveListener(ln net.Listener, h http.Handler, logger *zap.Logger) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: DefaultReadTimeout,
		WriteTimeout: server.DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", zap.Error(err))
		}
	}()
	return srv
}

// loopbackURL is the http:// URL through which this host reaches a listener
// bound to addr (an unspecified host, 0.0.0.0 or ::, is reached on loopback).
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func shutdownHTTP(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// apiOptions are what newAPI needs beyond the parts every process shares.
type apiOptions struct {
	runnerWait    time.Duration
	approvalWait  time.Duration
	stateVersions int
	// egress is what the API lets tenants reach (--notify-allow,
	// --webhook-allow, --source-allow).
	egress egressLists
	// ops adds metrics and the codec.
	ops apiOps
	// isolation is the local runners' sandbox status for /readyz (dev).
	isolation string
	// http hardens the API: its write timeout and stream cap are the
	// API's own, the rest the listener's (see serveAPI).
	http HTTPOptions
	// oidc is the OIDC issuer of --oidc-issuer (nil: none).
	oidc *oidc.Issuer
}

// newAPI builds the HTTP API and the hub that wakes its streams, fed from
// the store until ctx ends. secretKey is the raw key of box; the key of
// idempotent task IDs is derived from it.
//
// The API serves the MCP endpoint at /mcp too: its tools call this very API
// in process, with each request's own key.
func newAPI(ctx context.Context, c client.Client, st store.Store, keys *auth.Keyring, box *master.Box, secretKey []byte, logger *zap.Logger, o apiOptions) *server.Server {
	hub := events.NewHub()
	go hub.Run(ctx, st, logger.Named("events"))
	var api *server.Server
	self := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.Handler().ServeHTTP(w, server.InProcess(r)) })
	api = server.New(server.Options{
		WriteTimeout: o.http.WriteTimeout, MaxStreamsPerKey: o.http.MaxStreamsPerKey,
		Temporal: c, Store: st, Keys: keys, Secrets: box, Logger: logger.Named("http"), RunnerWait: o.runnerWait,
		ApprovalWait:  o.approvalWait,
		StateVersions: o.stateVersions,
		IDKey:         server.DeriveIDKey(secretKey),
		MCP:           mcp.HTTPHandler(self, Version),
		DataConverter: o.ops.codec.DataConverter(), Codec: o.ops.codec,
		CodecOrigins: o.ops.codecOrigins, CodecSession: o.ops.devUI,
		Metrics:      o.ops.metrics,
		Hub:          hub,
		NotifyAllow:  o.egress.notify,
		WebhookAllow: o.egress.webhook,
		SourceAllow:  o.egress.source,
		Isolation:    o.isolation,
		OIDC:         o.oidc,
	})
	return api
}

// Version is the version the MCP endpoint reports (set by the command).
var Version = "dev"

// egressLists are the allow lists of what tenants make the server reach.
type egressLists struct {
	// notify is --notify-allow: hosts a task's notify URL may name.
	notify events.AllowList
	// webhook is --webhook-allow: hosts webhooks may reach although they
	// are not public.
	webhook events.AllowList
	// source is --source-allow: hosts remote module sources may name.
	source events.AllowList
}

// parseEgress parses --notify-allow, --webhook-allow and --source-allow.
func parseEgress(notify, webhook, source []string) (egressLists, error) {
	var e egressLists
	var err error
	if e.notify, err = events.ParseAllowListFlag("--notify-allow", notify); err != nil {
		return e, err
	}
	if e.webhook, err = events.ParseAllowListFlag("--webhook-allow", webhook); err != nil {
		return e, err
	}
	if e.source, err = events.ParseAllowListFlag("--source-allow", source); err != nil {
		return e, err
	}
	return e, nil
}

// controlPlane starts the control-plane worker; its deliveries reach what
// egress allows.
func controlPlane(c client.Client, st store.Store, box *master.Box, logger *zap.Logger, egress egressLists) (sdkworker.Worker, error) {
	cp := worker.NewControlPlane(c, countingStore{st}, worker.ControlOptions{
		Secrets: box, Logger: logger.Named("delivery"), ObserveDelivery: observeDelivery,
		WebhookAllow: egress.webhook, NotifyAllow: egress.notify,
	})
	if err := cp.Start(); err != nil {
		return nil, fmt.Errorf("starting control-plane worker: %w", err)
	}
	return cp, nil
}

// checkApprovalWait validates --approval-timeout (0: the default, 24h).
func checkApprovalWait(d time.Duration) error {
	if d < 0 || (d > 0 && d < time.Second) || d > 720*time.Hour {
		return fmt.Errorf("--approval-timeout must be from 1s to 720h (or 0 for the default, 24h), got %s", d)
	}
	return nil
}

// cliConfigPath checks the runner's --terraform-cli-config and makes it
// absolute: Terraform runs in each task's own directory.
func cliConfigPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(abs); err != nil || fi.IsDir() {
		return "", fmt.Errorf("--terraform-cli-config %s: not a readable file", p)
	}
	return abs, nil
}
