package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/internal/runnerapi"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/internal/temporalutil"
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/worker"
)

// TemporalOptions say how to reach an existing Temporal cluster.
type TemporalOptions struct {
	Address   string // host:port, default 127.0.0.1:7233
	Namespace string // default "default"
	TLSCA     string // CA bundle file to verify the server
	TLSCert   string // client certificate file (mTLS)
	TLSKey    string // client key file (mTLS)
	TLSServer string // server name to verify, when it differs from the address
	APIKey    string // Temporal Cloud API key
}

func (t TemporalOptions) clientOptions(log *zap.Logger, cdc converters) (client.Options, error) {
	o := temporalClientOptions(client.Options{HostPort: t.Address, Namespace: t.Namespace, Logger: newSDKLogger(log)}, cdc)
	if o.HostPort == "" {
		o.HostPort = "127.0.0.1:7233"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if t.TLSCA != "" || t.TLSCert != "" || t.APIKey != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServer}
		if t.TLSCA != "" {
			pem, err := os.ReadFile(t.TLSCA)
			if err != nil {
				return o, fmt.Errorf("reading Temporal CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, errors.New("the Temporal CA file holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		if (t.TLSCert == "") != (t.TLSKey == "") {
			return o, errors.New("give both --temporal-tls-cert and --temporal-tls-key, or neither")
		}
		if t.TLSCert != "" {
			pair, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
			if err != nil {
				return o, fmt.Errorf("loading Temporal client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		o.ConnectionOptions.TLS = cfg
	}
	if t.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return o, nil
}

// ServerOptions configure `terratask server`.
type ServerOptions struct {
	Temporal    TemporalOptions
	HTTPAddress string // default 127.0.0.1:8080
	Store       string // SQLite path or sqlite://PATH
	KeysFile    string // required
	SecretKey   string // base64 32-byte key shared with the runners
	RunnerWait  time.Duration
	// OIDCIssuer is --oidc-issuer: the URL of the OIDC issuer whose
	// tokens steps get for credential sets with oidc (issue 22); "" none.
	OIDCIssuer string
	// HTTP hardens the API's listener: timeouts, the per-key stream cap,
	// TLS.
	HTTP HTTPOptions
	// ApprovalWait is how long a task waits for a decision on its plan
	// when its approval_timeout says nothing (default 24h).
	ApprovalWait time.Duration
	// StateVersions is how many Terraform state versions the state backend
	// keeps per workspace (0: all).
	StateVersions int
	// OldSecretKeysFile lists secret keys of earlier rotations, still
	// accepted for decryption (payloads, task secrets, state).
	OldSecretKeysFile string
	// MetricsAddress serves /metrics on a listener of its own instead of
	// on the API.
	MetricsAddress string
	// CodecOrigins are browser origins of Temporal Web UIs allowed to call
	// the codec routes (CORS).
	CodecOrigins []string
	// NotifyAllow lists the hosts a task's notify URL may name (host,
	// host:port or *.domain); empty: none.
	NotifyAllow []string
	// WebhookAllow lists the hosts webhooks may reach although they are
	// not public (loopback, private, link-local, ...); empty: public
	// addresses only.
	WebhookAllow []string
	// SourceAllow lists the hosts a task's remote module source may name;
	// empty: remote sources are refused.
	SourceAllow []string
	Logger      *zap.Logger
	Reload      <-chan os.Signal // SIGHUP: reload the keys file and the policy directories
	// PolicyDirs are --policy-dir values (ORG=DIR, or DIR for org
	// default), loaded at start and on Reload.
	PolicyDirs   []string
	Ready        func(httpAddr string)
	SkipRegister bool // do not try to register search attributes
}

// RunServer runs the API and the control-plane worker until ctx ends.
func RunServer(ctx context.Context, o ServerOptions) error {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if o.KeysFile == "" {
		return errors.New("--api-keys-file is required")
	}
	if o.Store == "" {
		return errors.New("--store is required")
	}
	if o.StateVersions < 0 {
		return errors.New("--state-versions must be 0 (keep all) or more")
	}
	if err := checkApprovalWait(o.ApprovalWait); err != nil {
		return err
	}
	if o.HTTPAddress == "" {
		o.HTTPAddress = "127.0.0.1:8080"
	}
	tlsCfg, err := o.HTTP.check(log)
	if err != nil {
		return err
	}
	keys, err := keysFrom(o.SecretKey, o.OldSecretKeysFile)
	if err != nil {
		return err
	}
	box, err := keys.box()
	if err != nil {
		return err
	}
	cdc, err := keys.control()
	if err != nil {
		return err
	}
	egress, err := parseEgress(o.NotifyAllow, o.WebhookAllow, o.SourceAllow)
	if err != nil {
		return err
	}
	keyList, err := auth.LoadFile(o.KeysFile)
	if err != nil {
		return err
	}
	policyDirs, err := parsePolicyDirs(o.PolicyDirs)
	if err != nil {
		return err
	}
	keyring, err := auth.NewKeyring(keyList)
	if err != nil {
		return err
	}
	s := &stack{logger: log}
	defer s.closeAll()

	st, c, copts, err := s.connect(ctx, o.Store, o.Temporal, log, cdc)
	if err != nil {
		return err
	}
	if err := syncPolicyDirs(ctx, st, policyDirs, log); err != nil {
		return err
	}
	if !o.SkipRegister {
		if err := temporalutil.EnsureSearchAttributes(ctx, c, copts.Namespace, task.SearchAttributes); err != nil {
			return fmt.Errorf("registering search attributes: %w", err)
		}
	}
	cp, err := controlPlane(c, st, box, log, egress)
	if err != nil {
		return err
	}
	s.push("control-plane worker", func() error { cp.Stop(); return nil })

	reg := metrics.NewRegistry(metricsSources(st, c, devOrg, nil))
	ops := apiOps{codec: cdc, codecOrigins: o.CodecOrigins, metrics: metrics.Handler(reg)}
	if o.MetricsAddress != "" {
		if _, err := s.serveMetrics(o.MetricsAddress, reg, log); err != nil {
			return err
		}
		ops.metrics = nil
	}
	issuer, err := startOIDC(ctx, o.OIDCIssuer, st, box, log)
	if err != nil {
		return err
	}
	api := newAPI(ctx, c, st, keyring, box, keys.current, log, apiOptions{runnerWait: o.RunnerWait, approvalWait: o.ApprovalWait, stateVersions: o.StateVersions, egress: egress, ops: ops, http: o.HTTP, oidc: issuer})
	ln, err := net.Listen("tcp", o.HTTPAddress)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.HTTPAddress, err)
	}
	srv, addr := serveAPI(ln, api, log, o.HTTP, tlsCfg), ln.Addr().String()
	s.push("http", func() error { return shutdownHTTP(srv) })
	log.Info("terratask server ready", zap.String("http", addr), zap.Bool("tls", tlsCfg != nil), zap.String("temporal", copts.HostPort))
	if o.Ready != nil {
		o.Ready(addr)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	reloads := fanOut(ctx, o.Reload, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		auth.WatchReload(ctx, reloads[0], o.KeysFile, keyring, log)
	}()
	go func() {
		defer wg.Done()
		watchPolicyDirs(ctx, reloads[1], st, policyDirs, log)
	}()
	<-ctx.Done()
	return nil
}

// RunnerOptions configure `terratask runner`.
type RunnerOptions struct {
	Temporal TemporalOptions
	// Org is the org the runner belongs to; SecretKey (and the keys of
	// OldSecretKeysFile) are that org's keys (`terratask keys org`), never
	// the control plane's secret key.
	Org     string
	ID      string
	DataDir string // default ./.terratask-runner
	// ServerURL is the base URL of a terratask server: the runner writes
	// task logs, plans and its host row through its runner API, with a
	// credential derived from the org key, and keeps Terraform state on
	// its state backend unless StateURL says otherwise.
	ServerURL string
	// Store, instead of ServerURL, is the servers' store itself: the
	// runner then reaches every org's data (a single-org deployment).
	Store       string
	SecretKey   string
	ModulesDir  string
	SourceRoots []string
	// SourceAllow lists the hosts a task's remote module source may name
	// (--source-allow); empty: remote sources are refused.
	SourceAllow []string
	// DefaultModule is used by tasks that name no module, source or files.
	DefaultModule string
	// StateURL is the base URL of a terratask server whose HTTP state
	// backend keeps the state of tasks without a backend of their own
	// (default ServerURL).
	StateURL string
	// StateDir holds local Terraform state when StateURL is empty (default
	// DATA-DIR/state); hosts sharing a runner ID should then share it (a
	// shared volume).
	StateDir string
	// TofuPaths are where the runner finds OpenTofu before PATH (see
	// activities.Runner.TofuPaths).
	TofuPaths []string
	// CLIConfigFile is the Terraform CLI config Terraform and OpenTofu run
	// with (for example one with a provider mirror); "" generates one.
	CLIConfigFile string
	// Isolation is how task code is contained (default strict).
	Isolation IsolationOptions
	// Grace is how long in-flight steps may finish at SIGTERM before they
	// are interrupted and handed back to another host (default 30s).
	Grace time.Duration
	// OldSecretKeysFile lists secret keys of earlier rotations, still
	// accepted for decryption (payloads, task secrets, state).
	OldSecretKeysFile string
	// MetricsAddress, when set, serves /metrics (step and Terraform command
	// durations, log lines, the Temporal SDK's metrics) on this address.
	MetricsAddress string
	Logger         *zap.Logger
	Ready          func()
}

// RunRunner runs one runner host until ctx ends.
func RunRunner(ctx context.Context, o RunnerOptions) error {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if o.ID == "" {
		return errors.New("--id is required")
	}
	switch {
	case o.Store != "" && o.ServerURL != "":
		return errors.New("give --server-url or --store, not both")
	case o.Store == "" && o.ServerURL == "":
		return errors.New("--server-url is required: the base URL of a terratask server, whose runner API keeps task logs and plans\n(or --store, the servers' store itself, for a runner trusted with every org's data)")
	}
	if err := checkStateURL(o.ServerURL); err != nil {
		return fmt.Errorf("--server-url: %w", err)
	}
	if o.StateURL == "" {
		o.StateURL = o.ServerURL
	}
	if err := checkStateURL(o.StateURL); err != nil {
		return err
	}
	if o.DataDir == "" {
		o.DataDir = ".terratask-runner"
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if !auth.ValidName(o.Org) {
		return errors.New("--org is required: the org the runner belongs to (1-128 letters, digits and @._:+-)")
	}
	keys, err := orgKeysFrom(o.Org, o.SecretKey, o.OldSecretKeysFile)
	if err != nil {
		return err
	}
	box, err := keys.orgBox()
	if err != nil {
		return err
	}
	cdc, err := keys.orgCodec(o.Org)
	if err != nil {
		return err
	}
	if o.CLIConfigFile, err = cliConfigPath(o.CLIConfigFile); err != nil {
		return err
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	// The state dir is mounted into the sandbox and read from Terraform's
	// work dir: a relative one would name neither.
	stateDir := o.StateDir
	if stateDir != "" {
		if stateDir, err = filepath.Abs(stateDir); err != nil {
			return err
		}
	}
	s := &stack{logger: log}
	defer s.closeAll()
	if o.MetricsAddress != "" {
		if _, err := s.serveMetrics(o.MetricsAddress, metrics.NewRegistry(nil), log); err != nil {
			return err
		}
	}
	// The control plane's side of the runner: its runner API (no access to
	// other orgs' data), or the store itself.
	var (
		logs    activities.LogSink
		plans   activities.PlanKeeper
		creds   activities.CredentialSource
		tokens  activities.TokenSource
		hostsTo worker.HostPublisher
		ended   func(ctx context.Context, org, id string) (bool, error)
	)
	if o.ServerURL != "" {
		api, err := runnerapi.New(o.ServerURL, o.Org, o.ID, box)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = api.Check(cctx)
		cancel()
		if err != nil {
			return err
		}
		logs, plans, creds, hostsTo, ended = countingLogs{api}, api, api, api, api.TaskEnded
		tokens = api
	} else {
		st, err := openStore(ctx, o.Store)
		if err != nil {
			return fmt.Errorf("opening store: %w", err)
		}
		s.push("store", st.Close)
		logs, plans, creds, hostsTo, ended = countingLogs{st}, st, store.LocalCredentials{Store: st}, st, storeTaskEnded(st)
		// A runner with the store is not the control plane: it has no
		// issuer, so oidc sets fail its steps.
		tokens = localTokens(st, nil)
	}
	c, _, err := s.dial(ctx, o.Temporal, log, cdc)
	if err != nil {
		return err
	}
	host, err := hostID(dataDir)
	if err != nil {
		return err
	}
	if err := privateDataDir(dataDir); err != nil {
		return err
	}
	sb, err := startIsolation(ctx, o.Isolation, sandbox.Strict, dataDir, log)
	if err != nil {
		return err
	}
	wd, err := startWatchdog(sb, log)
	if err != nil {
		return err
	}
	s.push("watchdog", wd.Close) // after the runners: closers run in reverse
	sourceAllow, err := events.ParseAllowListFlag("--source-allow", o.SourceAllow)
	if err != nil {
		return err
	}
	roots := o.SourceRoots
	if o.ModulesDir != "" {
		roots = append(roots, o.ModulesDir)
	}
	r := &activities.Runner{
		Org: o.Org, RunnerID: o.ID, HostID: host, DataDir: dataDir, ModulesDir: o.ModulesDir,
		DefaultModule: o.DefaultModule, SourceRoots: roots, SourceAllow: sourceAllow, Logs: logs, Plans: plans, Credentials: creds, Tokens: tokens, Secrets: box, StateDir: stateDir, StateURL: o.StateURL,
		TofuPaths: o.TofuPaths, CLIConfigFile: o.CLIConfigFile, Sandbox: sb, Watchdog: wd, PassEnv: o.Isolation.PassEnv,
		Logger: log.Named("runner").With(zap.String("runner", o.ID)),
	}
	// What the host offers is in the store before it polls.
	hosts := newHostPublisher(hostsTo)
	s.push("runner host", hosts.stop)
	hosts.publish(r)
	s.push("janitor", startJanitor(r, ended))
	ws, err := startRunner(c, r, o.Grace)
	if err != nil {
		return err
	}
	s.push("runner workers", func() error { worker.StopAll(ws); return nil })
	log.Info("terratask runner ready", zap.String("id", o.ID), zap.String("host", host))
	if o.Ready != nil {
		o.Ready()
	}
	<-ctx.Done()
	return nil
}

// keysFrom parses the secret key and reads the old keys file.
func keysFrom(key, oldFile string) (secretKeys, error) {
	if key == "" {
		return secretKeys{}, errors.New("a secret key is required (TERRATASK_SECRET_KEY or --secret-key-file): the same base64 32-byte key on every server (generate one with `terratask keys secret`; runners get their org's key, `terratask keys org`)")
	}
	raw, err := secret.ParseKey(key)
	if err != nil {
		return secretKeys{}, err
	}
	return loadSecretKeys(raw, oldFile)
}

// orgKeysFrom parses a runner's org key and reads its old keys file.
func orgKeysFrom(org, key, oldFile string) (secretKeys, error) {
	if key == "" {
		return secretKeys{}, fmt.Errorf("the org key is required (TERRATASK_SECRET_KEY or --secret-key-file): org %s's key, which `terratask keys org --org %s` prints on a host holding the secret key", org, org)
	}
	raw, err := secret.ParseKey(key)
	if err != nil {
		return secretKeys{}, err
	}
	return loadSecretKeys(raw, oldFile)
}

// connect opens the store and dials Temporal, pushing both onto the stack so
// shutdown closes them.
func (s *stack) connect(ctx context.Context, dsn string, t TemporalOptions, log *zap.Logger, cdc converters) (store.Store, client.Client, client.Options, error) {
	st, err := openStore(ctx, dsn)
	if err != nil {
		return nil, nil, client.Options{}, fmt.Errorf("opening store: %w", err)
	}
	s.push("store", st.Close)
	c, copts, err := s.dial(ctx, t, log, cdc)
	if err != nil {
		return nil, nil, copts, err
	}
	return st, c, copts, nil
}

// dial dials Temporal, pushing the client onto the stack.
func (s *stack) dial(ctx context.Context, t TemporalOptions, log *zap.Logger, cdc converters) (client.Client, client.Options, error) {
	copts, err := t.clientOptions(log, cdc)
	if err != nil {
		return nil, copts, err
	}
	c, err := dialTemporal(ctx, copts)
	if err != nil {
		return nil, copts, err
	}
	s.push("temporal client", func() error { c.Close(); return nil })
	return c, copts, nil
}

// checkStateURL validates --state-url: empty, or an http(s) URL of a host
// with no query or fragment.
func checkStateURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--state-url %q: want the server's base URL, such as http://terratask-server:8080", s)
	}
	return nil
}
