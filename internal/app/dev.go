package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/devserver"
	"github.com/terratask/terratask/internal/devtls"
	"github.com/terratask/terratask/internal/memtrim"
	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/metrics"
	"github.com/terratask/terratask/modules"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/worker"
)

// DevOptions configure `terratask dev`.
type DevOptions struct {
	DataDir      string   // default ./.terratask
	HTTPAddress  string   // default 127.0.0.1:8080
	TemporalAddr string   // embedded frontend, default 127.0.0.1:7233
	UIAddress    string   // default 127.0.0.1:8233; "" disables the UI
	Namespace    string   // default "default"
	Runners      []string // default ["local"]
	// OIDCIssuer is --oidc-issuer: the URL of the OIDC issuer whose
	// tokens steps get for credential sets with oidc (issue 22); "" none.
	OIDCIssuer string
	// OnDemandRunners starts a local runner for any other runner ID a task
	// names (the CLI sets it unless --runner was given).
	OnDemandRunners bool
	// MaxOnDemandRunners caps the runners started on demand per org
	// (default 8).
	MaxOnDemandRunners int
	ModulesDir         string // runner module catalog; default DATA/modules
	RunnerWait         time.Duration
	// ApprovalWait is how long a task waits for a decision on its plan
	// when its approval_timeout says nothing (default 24h).
	ApprovalWait time.Duration
	// StateVersions is how many Terraform state versions the state backend
	// keeps per workspace (0: all).
	StateVersions int
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
	// APIKey is the admin key (TERRATASK_API_KEY); empty: DATA/api-key, created when missing.
	APIKey string
	// KeysFile optionally adds the keys of a keys file (YAML or JSON,
	// hashes only) next to the admin key; reloaded when Reload delivers.
	KeysFile string
	Reload   <-chan os.Signal
	// PolicyDirs are --policy-dir values (ORG=DIR, or DIR for org
	// default): policies loaded at start and reloaded when Reload
	// delivers.
	PolicyDirs []string
	// TofuPaths are where the runners find OpenTofu before PATH (see
	// activities.Runner.TofuPaths).
	TofuPaths []string
	// CLIConfigFile is the Terraform CLI config the runners use (for
	// example one with a provider mirror); "" generates one per runner.
	CLIConfigFile string
	// Isolation is how the local runners contain task code (default auto).
	Isolation IsolationOptions
	// StopTimeout is how long in-flight steps get at shutdown before their
	// Terraform is interrupted (they resume after a restart).
	StopTimeout time.Duration
	// MetricsAddress serves /metrics on a listener of its own instead of
	// on the API.
	MetricsAddress string
	// HTTP hardens the API's listener: timeouts, the per-key stream cap,
	// TLS.
	HTTP HTTPOptions
	// OldSecretKeysFile lists secret keys of earlier rotations, still
	// accepted for decryption (payloads, task secrets, state).
	OldSecretKeysFile string
	Logger            *zap.Logger
	// Out receives the banner (URLs and key); default os.Stdout.
	Out io.Writer
	// Ready, when set, is called with the addresses once everything serves.
	Ready func(DevAddresses)
}

// DevAddresses are where a running dev instance listens.
type DevAddresses struct {
	HTTP     string
	Temporal string
	UI       string
	// UISession opens the UI with decoded payloads: it sets the codec
	// session's cookie, then leads to UI ("" without a UI).
	UISession string
	APIKey    string
	// URL is the API's base URL (https:// with TLS).
	URL string
}

func (o *DevOptions) defaults() {
	if o.DataDir == "" {
		o.DataDir = ".terratask"
	}
	if o.HTTPAddress == "" {
		o.HTTPAddress = "127.0.0.1:8080"
	}
	if o.TemporalAddr == "" {
		o.TemporalAddr = "127.0.0.1:7233"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if len(o.Runners) == 0 {
		o.Runners = []string{"local"}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5 * time.Second
	}
}

// RunDev runs everything in one process until ctx ends.
func RunDev(ctx context.Context, o DevOptions) error {
	o.defaults()
	if o.StateVersions < 0 {
		return errors.New("--state-versions must be 0 (keep all) or more")
	}
	if err := checkApprovalWait(o.ApprovalWait); err != nil {
		return err
	}
	egress, err := parseEgress(o.NotifyAllow, o.WebhookAllow, o.SourceAllow)
	if err != nil {
		return err
	}
	log := o.Logger
	s := &stack{logger: log}
	defer s.closeAll()
	tlsCfg, err := o.HTTP.check(log)
	if err != nil {
		return err
	}

	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	if o.CLIConfigFile, err = cliConfigPath(o.CLIConfigFile); err != nil {
		return err
	}
	if err := privateDataDir(dataDir); err != nil {
		return err
	}

	// Isolation first: strict refuses to start before anything listens.
	sb, err := startIsolation(ctx, o.Isolation, sandbox.Auto, dataDir, log)
	if err != nil {
		return err
	}
	wd, err := startWatchdog(sb, log)
	if err != nil {
		return err
	}
	s.push("watchdog", wd.Close) // after the runners: closers run in reverse

	key, err := secret.LoadOrCreateKeyFile(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		return err
	}
	keys, err := loadSecretKeys(key, o.OldSecretKeysFile)
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
	// The API listens first: the Web UI is told where its codec is.
	apiLn, err := net.Listen("tcp", o.HTTPAddress)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.HTTPAddress, err)
	}
	httpAddr := apiLn.Addr().String()
	apiURL := o.HTTP.scheme() + "://" + strings.TrimPrefix(loopbackURL(httpAddr), "http://")
	// With TLS the local runners reach the state backend on a loopback
	// listener of plain HTTP, which serves nothing else (see stateOnly).
	stateURL := loopbackURL(httpAddr)
	var stateLn net.Listener
	if tlsCfg != nil {
		if stateLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			apiLn.Close()
			return fmt.Errorf("listening for the local runners' state backend: %w", err)
		}
		stateURL = loopbackURL(stateLn.Addr().String())
	}
	apiLnServed := false
	defer func() {
		if !apiLnServed {
			apiLn.Close()
			if stateLn != nil {
				stateLn.Close()
			}
		}
	}()

	// The embedded Temporal speaks mutual TLS only: task code that reaches
	// 127.0.0.1 holds no client certificate (README, Isolation).
	tlsFiles, err := devtls.Ensure(filepath.Join(dataDir, devtls.DirName), frontendIPs(o.TemporalAddr)...)
	if err != nil {
		return err
	}
	ts, err := devserver.Start(ctx, devserver.Options{
		TLS:              &tlsFiles,
		DBFile:           filepath.Join(dataDir, "temporal.db"),
		FrontendAddress:  o.TemporalAddr,
		UIAddress:        o.UIAddress,
		UICodecEndpoint:  apiURL + "/api/v1/codec",
		Namespace:        o.Namespace,
		SearchAttributes: task.SearchAttributes,
		Logger:           log.Named("temporal"),
	})
	if err != nil {
		return fmt.Errorf("starting embedded Temporal: %w", err)
	}
	s.push("temporal", ts.Stop)

	st, err := openStore(ctx, filepath.Join(dataDir, "terratask.db"))
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	s.push("store", st.Close)

	apiKey, created, err := auth.LoadOrCreateDevKey(o.APIKey, filepath.Join(dataDir, "api-key"))
	if err != nil {
		return err
	}
	devKey := auth.Key{Name: "dev-admin", Org: devOrg, Role: auth.RoleAdmin, Hash: auth.HashKey(apiKey)}
	keyring, err := auth.NewKeyring([]auth.Key{devKey})
	if err != nil {
		return err
	}
	policyDirs, err := parsePolicyDirs(o.PolicyDirs)
	if err != nil {
		return err
	}
	reloads := fanOut(ctx, o.Reload, 2)
	if o.KeysFile != "" {
		if _, err := auth.Reload(o.KeysFile, keyring, devKey); err != nil {
			return err
		}
		go auth.WatchReload(ctx, reloads[0], o.KeysFile, keyring, log, devKey)
	}
	if len(policyDirs) > 0 {
		if err := syncPolicyDirs(ctx, st, policyDirs, log); err != nil {
			return err
		}
		go watchPolicyDirs(ctx, reloads[1], st, policyDirs, log)
	}

	clientTLS, err := ts.ClientTLS()
	if err != nil {
		return err
	}
	c, err := dialTemporal(ctx, temporalClientOptions(client.Options{HostPort: ts.FrontendAddress(), Namespace: ts.Namespace(), Logger: newSDKLogger(log),
		ConnectionOptions: client.ConnectionOptions{TLS: clientTLS}}, cdc))
	if err != nil {
		return err
	}
	s.push("temporal client", func() error { c.Close(); return nil })

	reg := metrics.NewRegistry(metricsSources(st, c, devOrg, o.Runners))
	ops := apiOps{codec: cdc, metrics: metrics.Handler(reg)}
	if ts.UIURL() != "" {
		// The UI's codec session (server.CodecSession): a token of this
		// run, printed in the banner as the UI's address.
		token := make([]byte, 24)
		if _, err := rand.Read(token); err != nil {
			return err
		}
		ops.devUI = &server.CodecSession{Token: hex.EncodeToString(token), Org: devOrg, UIURL: ts.UIURL(), Origins: uiOrigins(ts.UIURL())}
	}
	if o.MetricsAddress != "" {
		if _, err := s.serveMetrics(o.MetricsAddress, reg, log); err != nil {
			return err
		}
		ops.metrics = nil
	}

	cp, err := controlPlane(c, st, box, log, egress)
	if err != nil {
		return err
	}
	s.push("control-plane worker", func() error { cp.Stop(); return nil })

	modulesDir := o.ModulesDir
	if modulesDir == "" {
		modulesDir = filepath.Join(dataDir, "modules")
	}
	demoDir := filepath.Join(dataDir, "demo-module")
	if err := modules.WriteDemo(demoDir); err != nil {
		return fmt.Errorf("writing the demo module: %w", err)
	}
	if err := os.MkdirAll(modulesDir, 0o700); err != nil {
		return err
	}
	// The API starts before the runners and stops after them: their steps
	// keep state on its HTTP backend until the last one has finished.
	issuer, err := startOIDC(ctx, o.OIDCIssuer, st, box, log)
	if err != nil {
		return err
	}
	api := newAPI(ctx, c, st, keyring, box, key, log, apiOptions{runnerWait: o.RunnerWait, approvalWait: o.ApprovalWait, stateVersions: o.StateVersions, egress: egress, ops: ops, isolation: sb.Status(), http: o.HTTP, oidc: issuer})
	srv := serveAPI(apiLn, api, log, o.HTTP, tlsCfg)
	apiLnServed = true
	s.push("http", func() error { return shutdownHTTP(srv) })
	if stateLn != nil {
		ssrv := serveState(stateLn, api, log, o.HTTP)
		s.push("http (state)", func() error { return shutdownHTTP(ssrv) })
	}

	// Each local runner publishes its engines until shutdown (after the
	// on-demand runners stop: closers run in reverse).
	hosts := newHostPublisher(st)
	s.push("runner hosts", hosts.stop)
	janitors := &closers{}
	s.push("janitors", janitors.close)
	runnerClients := &closers{}
	s.push("runner clients", runnerClients.close) // after every runner stopped
	// A local runner holds its org's key, as a runner host would, and
	// speaks to Temporal through a client of its own with its org's codec
	// (on the same connection).
	startLocal := func(org, id string) ([]sdkworker.Worker, error) {
		runnerDir := filepath.Join(dataDir, "runners", id)
		if org != devOrg {
			runnerDir = filepath.Join(dataDir, "orgs", "org-"+org, "runners", id)
		}
		host, err := hostID(runnerDir)
		if err != nil {
			return nil, err
		}
		orgBox, err := box.Org(org)
		if err != nil {
			return nil, err
		}
		orgCodec, err := cdc.Org(org)
		if err != nil {
			return nil, err
		}
		rc, err := client.NewClientFromExisting(c, temporalClientOptions(client.Options{Namespace: ts.Namespace(), Logger: newSDKLogger(log)}, orgCodec))
		if err != nil {
			return nil, err
		}
		runnerClients.add(func() error { rc.Close(); return nil })
		r := &activities.Runner{
			Org: org, RunnerID: id, HostID: host, DataDir: runnerDir, ModulesDir: modulesDir,
			DefaultModule: demoDir, SourceRoots: []string{modulesDir, demoDir}, SourceAllow: egress.source,
			Logs: countingStore{st}, Plans: st, Credentials: store.LocalCredentials{Store: st}, Tokens: localTokens(st, issuer), Secrets: orgBox, StateURL: stateURL,
			TofuPaths: o.TofuPaths, CLIConfigFile: o.CLIConfigFile, Sandbox: sb, Watchdog: wd, PassEnv: o.Isolation.PassEnv,
			Logger: log.Named("runner").With(zap.String("org", org), zap.String("runner", id)),
		}
		hosts.publish(r) // before it polls: what it offers is known first
		janitors.add(startJanitor(r, storeTaskEnded(st)))
		return startRunner(rc, r, o.StopTimeout)
	}
	for _, id := range o.Runners {
		ws, err := startLocal(devOrg, id)
		if err != nil {
			return fmt.Errorf("starting runner %s: %w", id, err)
		}
		s.push("runner "+id, func() error { worker.StopAll(ws); return nil })
	}
	if o.OnDemandRunners {
		d := newOnDemand(c, ts.Namespace(), devOrg, o.Runners, o.MaxOnDemandRunners, startLocal, log.Named("on-demand"))
		s.push("on-demand runners", d.stop)
		d.run(ctx)
	}

	addrs := DevAddresses{HTTP: httpAddr, URL: apiURL, Temporal: ts.FrontendAddress(), UI: ts.UIURL(), APIKey: apiKey}
	if ops.devUI != nil {
		addrs.UISession = apiURL + "/api/v1/codec/session?token=" + ops.devUI.Token
	}
	printBanner(o.Out, addrs, dataDir, o.Runners, o.OnDemandRunners, created, o.APIKey != "")
	log.Info("terratask dev ready", zap.String("http", httpAddr), zap.String("temporal", ts.FrontendAddress()), zap.String("ui", ts.UIURL()))
	if o.Ready != nil {
		o.Ready(addrs)
	}
	// Start-up read most of this large binary once; hand those pages back
	// (internal/memtrim): what runs from now on comes back as used.
	if n, err := memtrim.Release(); err != nil {
		log.Debug("releasing the binary's start-up pages", zap.Error(err))
	} else {
		log.Debug("released the binary's start-up pages", zap.Int64("mapped_bytes", n))
	}
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

func printBanner(w io.Writer, a DevAddresses, dataDir string, runners []string, onDemand, created, fromEnv bool) {
	keyNote := "stored in " + filepath.Join(dataDir, "api-key")
	if created {
		keyNote = "new, " + keyNote
	}
	if fromEnv {
		keyNote = "from TERRATASK_API_KEY"
	}
	served := strings.Join(runners, ", ")
	if onDemand {
		served += " (and any other runner ID a task names, started on demand)"
	}
	fmt.Fprintf(w, "terratask dev is running\n")
	base := a.URL
	if base == "" {
		base = "http://" + a.HTTP
	}
	fmt.Fprintf(w, "  API:          %s/api/v1/tasks\n", base)
	if a.UI != "" {
		fmt.Fprintf(w, "  Temporal UI:  %s\n", a.UI)
		if a.UISession != "" {
			fmt.Fprintf(w, "  UI session:   %s (open it once: the UI then shows decoded payloads)\n", a.UISession)
		}
	}
	fmt.Fprintf(w, "  Temporal:     %s (namespace default; mutual TLS, certificates in %s)\n", a.Temporal, filepath.Join(dataDir, devtls.DirName))
	fmt.Fprintf(w, "  Runners:      %s\n", served)
	fmt.Fprintf(w, "  MCP:          %s/mcp (streamable HTTP; or `terratask mcp` over stdio)\n", base)
	fmt.Fprintf(w, "  Data dir:     %s\n", dataDir)
	fmt.Fprintf(w, "  Admin key:    %s (%s)\n\n", a.APIKey, keyNote)
	fmt.Fprintf(w, "Use it from another shell:\n")
	fmt.Fprintf(w, "  export TERRATASK_API_KEY=%s TERRATASK_ADDRESS=%s\n", a.APIKey, base)
	fmt.Fprintf(w, "  terratask tasks create --name hello --agent me --runner %s --wait   # the demo module\n", runners[0])
	fmt.Fprintf(w, "  terratask tasks list\n")
	fmt.Fprintf(w, "  terratask tasks logs TASK_ID --follow\n")
	fmt.Fprintf(w, "  curl -H \"Authorization: UserKey $TERRATASK_API_KEY\" %s/api/v1/tasks\n", base)
	tlsDir := filepath.Join(dataDir, devtls.DirName)
	fmt.Fprintf(w, "  temporal workflow list --address %s --tls-ca-path %s --tls-cert-path %s --tls-key-path %s --tls-server-name %s\n",
		a.Temporal, filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "client.pem"), filepath.Join(tlsDir, "client-key.pem"), devtls.ServerName)
}

// frontendIPs are the addresses beyond loopback that the frontend's
// certificate names: the listen address, when it is a specific one.
func frontendIPs(addr string) []net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		return []net.IP{ip}
	}
	return nil
}

// uiOrigins are the browser origins of dev's Web UI: its URL as printed,
// and the same port on "localhost" and 127.0.0.1.
func uiOrigins(uiURL string) []string {
	if uiURL == "" {
		return nil
	}
	out := []string{uiURL}
	if u, err := url.Parse(uiURL); err == nil && u.Port() != "" {
		for _, h := range []string{"localhost", "127.0.0.1", "[::1]"} {
			if o := "http://" + h + ":" + u.Port(); o != uiURL {
				out = append(out, o)
			}
		}
	}
	return out
}
