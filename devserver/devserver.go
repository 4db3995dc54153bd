// Package devserver runs a single-process Temporal server backed by a SQLite
// file, plus the Temporal Web UI, for `terratask dev` and for tests.
//
// State lives in Options.DBFile: the file is created with Temporal's schema on
// the first start and reused afterwards, so workflows survive a restart. Only
// one Server may use a database file at a time; a second Start on the same
// file (from this or another process) fails with ErrDBInUse instead of
// corrupting it.
package devserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"

	"github.com/terratask/terratask/internal/devtls"
	"github.com/terratask/terratask/internal/temporalutil"
)

// Defaults for Options.
const (
	DefaultFrontendAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
)

// maxKeywordSearchAttributes is how many custom Keyword search attributes
// Temporal's SQLite visibility schema has columns for (Keyword01..Keyword10),
// per namespace.
const maxKeywordSearchAttributes = 10

// readyTimeout bounds the waits in Start after Temporal's services have
// started (frontend reachable, namespace and search attributes usable, UI
// answering), in addition to the caller's ctx.
const readyTimeout = 2 * time.Minute

// namespaceRetention is the workflow history retention of the namespace
// Start registers (an existing namespace keeps its retention).
const namespaceRetention = 7 * 24 * time.Hour

// clusterName is persisted in the database on first start; it must not
// change between starts.
const clusterName = "active"

// ErrDBInUse is returned by Start when another Server (in this process or
// another one) is using the database file.
var ErrDBInUse = errors.New("dev server database is in use by another dev server")

// Options configures Start.
type Options struct {
	// DBFile is the SQLite database file. It is created with Temporal's
	// schema on first start and reused afterwards (a restart keeps
	// workflows). Its directory is created if missing. A lock file
	// DBFile+".lock" is kept next to it, and SQLite's WAL files
	// (DBFile+"-wal", DBFile+"-shm") exist while the server runs.
	DBFile string
	// FrontendAddress is the host:port of the gRPC frontend, e.g.
	// "127.0.0.1:7233". Port 0 picks a free port. The host must be an IP
	// address or "localhost"; empty means DefaultFrontendAddress.
	FrontendAddress string
	// UIAddress is the host:port for the Web UI, e.g. "127.0.0.1:8233".
	// Empty means no UI; port 0 picks a free port.
	UIAddress string
	// UICodecEndpoint, when set, is the codec server the Web UI's pages
	// call to decode payloads (codec.endpoint of the UI's config), such as
	// terratask's http://127.0.0.1:8080/api/v1/codec.
	UICodecEndpoint string
	// Namespace is registered at start. Empty means DefaultNamespace.
	Namespace string
	// SearchAttributes are custom search attributes of type Keyword
	// registered in Namespace at start. At most 10 (a limit of the SQLite
	// visibility schema).
	SearchAttributes []string
	// Logger receives Temporal's own logs at warn level and above, and the
	// UI server's errors. Nil discards them.
	Logger *zap.Logger
	// TLS, when set, makes the frontend and the internal services speak
	// mutual TLS with certificates of TLS.CA only (see package devtls):
	// clients without one get nothing. Start's own client and the Web UI
	// use TLS's client certificate; ClientTLS gives it to other clients.
	TLS *devtls.Files
}

// Server is a running dev server. Stop it with Stop.
type Server struct {
	namespace string
	frontend  string // dialable host:port
	uiURL     string
	logger    *zap.Logger

	tls *devtls.Files

	lock     *fileLock
	instance int64
	temporal temporal.Server
	tlog     serverLogger
	ui       *uiServer

	stopOnce sync.Once
	stopErr  error
}

// FrontendAddress is the host:port clients in this process should dial (the
// loopback address when the frontend listens on all interfaces).
func (s *Server) FrontendAddress() string { return s.frontend }

// UIURL is the Web UI's base URL, e.g. "http://127.0.0.1:8233", or "" when
// the UI is disabled.
func (s *Server) UIURL() string { return s.uiURL }

// ClientTLS is the TLS configuration a client of this server needs (nil
// when it speaks plain gRPC).
func (s *Server) ClientTLS() (*tls.Config, error) {
	if s.tls == nil {
		return nil, nil
	}
	return s.tls.ClientConfig()
}

// Namespace is the namespace registered at start.
func (s *Server) Namespace() string { return s.namespace }

type settings struct {
	dbFile    string
	frontend  listenAddr
	ui        *listenAddr
	namespace string
	attrs     []string
	logger    *zap.Logger
}

func (o Options) validate() (settings, error) {
	var st settings
	if o.DBFile == "" {
		return st, errors.New("devserver: DBFile is required")
	}
	if strings.ContainsAny(o.DBFile, "?#%") {
		// The path ends up in a "file:" URI (SQLite DSN) unescaped.
		return st, fmt.Errorf("devserver: DBFile %q must not contain '?', '#' or '%%'", o.DBFile)
	}
	abs, err := filepath.Abs(o.DBFile)
	if err != nil {
		return st, fmt.Errorf("devserver: DBFile: %w", err)
	}
	st.dbFile = abs
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return st, fmt.Errorf("devserver: DBFile %s is a directory", abs)
	}

	fa := o.FrontendAddress
	if fa == "" {
		fa = DefaultFrontendAddress
	}
	if st.frontend, err = parseListenAddr("devserver: FrontendAddress", fa); err != nil {
		return st, err
	}
	if o.UIAddress != "" {
		ua, err := parseListenAddr("devserver: UIAddress", o.UIAddress)
		if err != nil {
			return st, err
		}
		st.ui = &ua
	}

	st.namespace = o.Namespace
	if st.namespace == "" {
		st.namespace = DefaultNamespace
	}
	if st.namespace == primitives.SystemLocalNamespace {
		return st, fmt.Errorf("devserver: Namespace %q is reserved", st.namespace)
	}
	if err := temporalutil.ValidateSearchAttributeNames(o.SearchAttributes); err != nil {
		return st, fmt.Errorf("devserver: SearchAttributes: %w", err)
	}
	if len(o.SearchAttributes) > maxKeywordSearchAttributes {
		return st, fmt.Errorf("devserver: at most %d SearchAttributes are supported with SQLite, got %d",
			maxKeywordSearchAttributes, len(o.SearchAttributes))
	}
	st.attrs = append([]string(nil), o.SearchAttributes...)

	st.logger = o.Logger
	if st.logger == nil {
		st.logger = zap.NewNop()
	}
	return st, nil
}

// Start validates opts, starts Temporal on opts.DBFile and, if configured,
// the Web UI. It returns once the frontend accepts requests, the namespace
// and search attributes are registered and usable, and the UI answers. ctx
// bounds the waiting (Temporal's own service start-up is bounded
// internally). On failure everything Start did is undone.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	st, err := opts.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{namespace: st.namespace, logger: st.logger, tls: opts.TLS}

	defer func() {
		if err != nil {
			if stopErr := s.Stop(); stopErr != nil {
				st.logger.Warn("devserver: cleanup after failed start", zap.Error(stopErr))
			}
		}
	}()

	if err := os.MkdirAll(filepath.Dir(st.dbFile), 0o755); err != nil {
		return nil, fmt.Errorf("devserver: create directory for DBFile: %w", err)
	}
	if s.lock, err = lockFile(st.dbFile + ".lock"); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	created, err := ensureSchema(ctx, st.dbFile)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if created {
		st.logger.Info("devserver: created Temporal database", zap.String("file", st.dbFile))
	}

	// Ports: check fixed ones are free, pick free ones for port 0 and for
	// the internal services, holding them until the servers bind.
	var temporalPorts, uiPorts reservation
	defer temporalPorts.release()
	defer uiPorts.release()
	if err := reservePort(&temporalPorts, "FrontendAddress", &st.frontend); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if st.ui != nil {
		if err := reservePort(&uiPorts, "UIAddress", st.ui); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
	}
	internal := map[primitives.ServiceName]int{}
	for _, svc := range []primitives.ServiceName{primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		if internal[svc], err = temporalPorts.reserve(loopback); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
	}
	s.frontend = st.frontend.dialAddress()

	installConnHook()
	s.instance = instanceSeq.Add(1)
	registry.track(s.instance)

	s.tlog = newServerLogger(st.logger)
	serverOpts := temporalOptions(st, internal, temporalSQLConfig(st.dbFile, s.instance), s.tlog, opts.TLS)
	temporalPorts.release()
	if s.temporal, err = startTemporal(serverOpts); err != nil {
		return nil, fmt.Errorf("devserver: start temporal: %w", err)
	}

	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	clientTLS, err := s.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	c, err := dialFrontend(readyCtx, s.frontend, st.namespace, clientTLS, st.logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	defer c.Close()
	if err := temporalutil.EnsureNamespace(readyCtx, c, st.namespace, namespaceRetention); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := temporalutil.WaitForNamespaceReady(readyCtx, c, st.namespace); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := temporalutil.EnsureSearchAttributes(readyCtx, c, st.namespace, st.attrs); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := temporalutil.WaitForSearchAttributes(readyCtx, c, st.namespace, st.attrs); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}

	s.tlog.starting.Store(false)

	if st.ui != nil {
		uiPorts.release()
		if s.ui, err = startUI(readyCtx, *st.ui, s.frontend, st.namespace, opts.UICodecEndpoint, opts.TLS); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
		s.uiURL = s.ui.url
	}
	return s, nil
}

const loopback = "127.0.0.1"

// reservePort checks a fixed port is free, or picks one for port 0, and
// keeps it reserved in r.
func reservePort(r *reservation, what string, a *listenAddr) error {
	if a.port != 0 {
		return r.check(what, a.bindAddress())
	}
	p, err := r.reserve(a.bindHost())
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	a.port = p
	return nil
}

func temporalOptions(st settings, internal map[primitives.ServiceName]int, sqlCfg *config.SQL, logger serverLogger, files *devtls.Files) []temporal.ServerOption {
	frontendDial := st.frontend.dialAddress()
	conf := &config.Config{}
	if files != nil {
		// One CA, one server certificate for every service; each service
		// is also the others' client (internode), and the system worker is
		// the frontend's.
		server := config.ServerTLS{CertFile: files.ServerCert, KeyFile: files.ServerKey,
			ClientCAFiles: []string{files.CA}, RequireClientAuth: true}
		client := config.ClientTLS{RootCAFiles: []string{files.CA}, ServerName: devtls.ServerName}
		conf.Global.TLS = config.RootTLS{
			Internode:    config.GroupTLS{Server: server, Client: client},
			Frontend:     config.GroupTLS{Server: server, Client: client},
			SystemWorker: config.WorkerTLS{CertFile: files.ClientCert, KeyFile: files.ClientKey, Client: client},
		}
	}
	conf.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: loopback}
	conf.Persistence = config.Persistence{
		DefaultStore:     "sqlite",
		VisibilityStore:  "sqlite",
		NumHistoryShards: 1, // persisted on first start; must never change
		DataStores:       map[string]config.DataStore{"sqlite": {SQL: sqlCfg}},
	}
	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontendDial},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{
		string(primitives.FrontendService): {RPC: config.RPC{GRPCPort: st.frontend.port, BindOnIP: st.frontend.bindHost()}},
	}
	hosts := map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(frontendDial),
	}
	for svc, port := range internal {
		conf.Services[string(svc)] = config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: loopback}}
		hosts[svc] = static.SingleLocalHost(fmt.Sprintf("%s:%d", loopback, port))
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontendDial

	return []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(devDynamicConfig()),
	}
}

// devDynamicConfig holds settings suited to a single-user, single-process
// server.
func devDynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		// Namespace changes (new namespace, new search attribute alias) reach
		// every service within a second instead of ten.
		dynamicconfig.NamespaceCacheRefreshInterval.Key(): time.Second,
		// The UI polls visibility; the default of 10 rps per namespace is
		// easy to hit with the UI plus terratask's own listing.
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// One partition per task queue: nothing to balance on one node, and
		// tasks are not forwarded between partitions.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
		// Keep the mutable-state cache small; the default is sized for
		// production hosts.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key(): 8192,
	}
}

// startTemporal creates and starts the server. Temporal reports some start-up
// failures through Logger.Fatal, which our logger turns into a panic; those
// on this goroutine become errors here.
func startTemporal(opts []temporal.ServerOption) (srv temporal.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
			if srv != nil {
				_ = stopTemporal(srv)
				srv = nil
			}
		}
	}()
	srv, err = temporal.NewServer(opts...)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		_ = stopTemporal(srv)
		return nil, err
	}
	return srv, nil
}

func stopTemporal(srv temporal.Server) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("temporal server panicked while stopping: %v", r)
		}
	}()
	return srv.Stop()
}

// dialFrontend connects to the frontend, retrying until it answers or ctx
// ends.
func dialFrontend(ctx context.Context, hostPort, namespace string, tlsConf *tls.Config, logger *zap.Logger) (client.Client, error) {
	backoff := 20 * time.Millisecond
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(attemptCtx, client.Options{
			HostPort:          hostPort,
			Namespace:         namespace,
			Logger:            newSDKLogger(logger),
			ConnectionOptions: client.ConnectionOptions{TLS: tlsConf},
		})
		cancel()
		if err == nil {
			return c, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for temporal frontend at %s: %w (last error: %v)", hostPort, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// Stop stops the UI and Temporal and releases the database file (its SQLite
// connections and the lock). It is safe to call more than once; later calls
// return the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.ui != nil {
			if err := s.ui.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop UI: %w", err))
			}
		}
		if s.temporal != nil {
			s.tlog.quiet.Store(true)
			if err := stopTemporal(s.temporal); err != nil {
				errs = append(errs, fmt.Errorf("stop temporal: %w", err))
			}
		}
		if s.instance != 0 {
			if err := registry.closeAll(s.instance); err != nil {
				errs = append(errs, fmt.Errorf("close database: %w", err))
			}
		}
		if err := s.lock.unlock(); err != nil {
			errs = append(errs, fmt.Errorf("release lock: %w", err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
