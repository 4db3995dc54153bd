package devserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"

	"github.com/terratask/terratask/internal/devtls"
)

// uiServer is a running Web UI.
type uiServer struct {
	srv  *uiserver.Server
	done chan struct{}
	url  string
}

// startUI starts the Web UI on addr, proxying to the frontend at
// frontendAddr, and waits until it answers its health check. A codec
// endpoint, when given, is where the UI's pages send payloads to decode.
//
// The UI server calls echo's Logger.Fatal (os.Exit) if it cannot listen;
// Start has checked the port just before, which leaves only a short race.
func startUI(ctx context.Context, addr listenAddr, frontendAddr, namespace, codecEndpoint string, files *devtls.Files) (_ *uiServer, err error) {
	host := addr.bindHost()
	if addr.ip.To4() == nil {
		host = "[" + host + "]" // the UI server joins host and port with "%s:%d"
	}
	cfg := &uiconfig.Config{
		Host:                host,
		Port:                addr.port,
		TemporalGRPCAddress: frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    namespace,
		HideLogs:            true,
		// Served over plain http: a Secure CSRF cookie would never be sent
		// back and every write action in the UI would fail.
		CORS: uiconfig.CORS{CookieInsecure: true},
		// No calls from the browser to temporal.io.
		DisableNewsFetch: true,
		// The browser calls the codec itself (cross-origin, so the codec
		// answers CORS for this UI's origin), with credentials: the codec
		// session's cookie (server.CodecSession). No access token to
		// pass: this UI has no login.
		Codec: uiconfig.Codec{Endpoint: codecEndpoint, IncludeCredentials: true},
		// Cancel, terminate, signal and reset stay the API's: any process
		// on the machine reaches this UI, task code included.
		DisableWriteActions: true,
	}
	if files != nil {
		cfg.TLS = uiconfig.TLS{CaFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey,
			ServerName: devtls.ServerName, EnableHostVerification: true}
	}

	var srv *uiserver.Server
	func() {
		defer func() {
			if r := recover(); r != nil { // NewServer panics on bad config
				err = fmt.Errorf("create UI server: %v", r)
			}
		}()
		srv = uiserver.NewServer(uiserveroptions.WithConfigProvider(cfg))
	}()
	if err != nil {
		return nil, err
	}

	u := &uiServer{
		srv:  srv,
		done: make(chan struct{}),
		url:  "http://" + net.JoinHostPort(addr.dialHost(), strconv.Itoa(addr.port)),
	}
	go func() {
		defer close(u.done)
		_ = srv.Start() // returns nil once Stop closes it
	}()

	backoff := 10 * time.Millisecond
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr := httpGetOK(attemptCtx, u.url+"/healthz")
		cancel()
		if lastErr == nil {
			return u, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = u.stop()
			return nil, fmt.Errorf("waiting for the UI at %s: %w (last error: %v)", u.url, ctx.Err(), lastErr)
		case <-u.done:
			t.Stop()
			return nil, fmt.Errorf("UI server at %s stopped during start-up (last error: %v)", u.url, lastErr)
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// stop closes the UI's listener and connections and waits for its serve loop
// to return. The UI server's gRPC connection to the frontend is not closed by
// the library; it goes idle once the frontend is gone.
func (u *uiServer) stop() error {
	u.srv.Stop()
	select {
	case <-u.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("UI server at %s did not stop within 10s", u.url)
	}
}

func httpGetOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
