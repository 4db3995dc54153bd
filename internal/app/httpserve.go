package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/server"
)

// HTTPOptions harden the API's HTTP server (dev and server): its timeouts,
// the per-key stream cap, and TLS. Zero values take the defaults.
type HTTPOptions struct {
	// TLSCertFile and TLSKeyFile, both or neither, serve the API and /mcp
	// over TLS (HTTP/2 and HTTP/1.1). A changed pair of files is loaded
	// again within a minute, without a restart.
	TLSCertFile string
	TLSKeyFile  string
	// ReadTimeout bounds reading a request, its header and its body
	// (default DefaultReadTimeout). The state backend's uploads get
	// longer (2 minutes from when their turn comes).
	ReadTimeout time.Duration
	// WriteTimeout bounds answering a request, from its start (default
	// server.DefaultWriteTimeout); a stream has no deadline while idle,
	// each of its writes gets WriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long (default
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxStreamsPerKey caps the streams one API key has open on this
	// process (default server.DefaultMaxStreamsPerKey).
	MaxStreamsPerKey int
}

// Defaults of HTTPOptions.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// check fills the defaults and validates the options; it loads the TLS pair
// (nil without TLS), so a bad file stops the process before it listens.
func (o *HTTPOptions) check(log *zap.Logger) (*tls.Config, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"--http-read-timeout", &o.ReadTimeout, DefaultReadTimeout},
		{"--http-write-timeout", &o.WriteTimeout, server.DefaultWriteTimeout},
		{"--http-idle-timeout", &o.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("%s must be positive, got %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.MaxStreamsPerKey < 0 {
		return nil, fmt.Errorf("--max-streams-per-key must be at least 1, got %d", o.MaxStreamsPerKey)
	}
	if o.MaxStreamsPerKey == 0 {
		o.MaxStreamsPerKey = server.DefaultMaxStreamsPerKey
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("give both --tls-cert-file and --tls-key-file, or neither")
	}
	if o.TLSCertFile == "" {
		return nil, nil
	}
	kp, err := newKeyPair(o.TLSCertFile, o.TLSKeyFile, log)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}, nil
}

// scheme is the API's URL scheme.
func (o HTTPOptions) scheme() string {
	if o.TLSCertFile != "" {
		return "https"
	}
	return "http"
}

// keyPair is the server's certificate, loaded again when its files change
// (checked at most every certCheckEvery, at a handshake).
type keyPair struct {
	certFile, keyFile string
	log               *zap.Logger
	mu                sync.Mutex
	cert              *tls.Certificate
	mod               [2]time.Time
	checked           time.Time
}

const certCheckEvery = time.Minute

func newKeyPair(certFile, keyFile string, log *zap.Logger) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile, log: log}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return kp, nil
}

func (kp *keyPair) modTimes() [2]time.Time {
	var m [2]time.Time
	for i, f := range []string{kp.certFile, kp.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			m[i] = fi.ModTime()
		}
	}
	return m
}

func (kp *keyPair) load() error {
	mod := kp.modTimes()
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("loading --tls-cert-file %s and --tls-key-file %s: %w", kp.certFile, kp.keyFile, err)
	}
	kp.cert, kp.mod, kp.checked = &cert, mod, time.Now()
	return nil
}

func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if time.Since(kp.checked) >= certCheckEvery {
		kp.checked = time.Now()
		if kp.modTimes() != kp.mod {
			if err := kp.load(); err != nil {
				// Half-written files (the certificate renewed, not yet its
				// key): keep serving the old pair, and try again later.
				kp.log.Warn("TLS certificate changed but does not load; still serving the previous one", zap.Error(err))
			} else {
				kp.log.Info("TLS certificate loaded again", zap.String("cert", kp.certFile))
			}
		}
	}
	return kp.cert, nil
}

// serveAPI serves the API on ln, over TLS when tlsCfg is set, with o's
// timeouts (the write timeout is the API's own, per request: see package
// server); a shutdown first ends the API's open streams, so it never waits
// on them.
func serveAPI(ln net.Listener, api *server.Server, logger *zap.Logger, o HTTPOptions, tlsCfg *tls.Config) *http.Server {
	srv := newHTTPServer(api.Handler(), logger, o)
	srv.TLSConfig = tlsCfg
	srv.RegisterOnShutdown(api.CloseStreams)
	go func() {
		var err error
		if tlsCfg != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", zap.Error(err))
		}
	}()
	return srv
}

// serveState serves the API's state backend routes only (stateOnly) on ln,
// over plain HTTP.
func serveState(ln net.Listener, api *server.Server, logger *zap.Logger, o HTTPOptions) *http.Server {
	srv := newHTTPServer(stateOnly(api.Handler()), logger, o)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server (state) stopped", zap.Error(err))
		}
	}()
	return srv
}

// newHTTPServer is an http.Server of h with o's listener timeouts. Its
// WriteTimeout stays 0: it would end streams; the API sets a deadline per
// request instead.
func newHTTPServer(h http.Handler, logger *zap.Logger, o HTTPOptions) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: min(DefaultReadHeaderTimeout, o.ReadTimeout),
		ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout,
		ErrorLog: log.New(serverLog{logger.Named("http-server")}, "", 0)}
}

// stateOnly serves only the state backend's routes of the API: dev's local
// runners reach it through a loopback listener of plain HTTP when the API
// itself speaks TLS (their state proxies trust the system's CAs only).
func stateOnly(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/state/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"this listener serves the state backend only","details":{}}}` + "\n"))
			return
		}
		api.ServeHTTP(w, r)
	})
}

// serverLog is net/http's error log: failed TLS handshakes (scanners,
// clients speaking plain HTTP to TLS) at debug level, the rest as warnings.
type serverLog struct{ l *zap.Logger }

func (s serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		s.l.Debug(msg)
	} else {
		s.l.Warn(msg)
	}
	return len(p), nil
}
