package activities

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// stateProxy is the runner's loopback proxy to the server's state backend.
// Terraform reaches its state through http://127.0.0.1:PORT/s/TOKEN (and
// .../lock); the proxy adds the step attempt's credential and forwards to
// the server. So the credential is in no process's environment or file:
// nothing sends it anywhere but the server, not even a module's own http
// backend or a terraform_remote_state data source that falls back to
// TF_HTTP_USERNAME/TF_HTTP_PASSWORD. A token lives as long as its step: a
// Terraform process that outlives its step (on a host declared lost) loses
// its way to the state.
type stateProxy struct {
	addr   string
	client *http.Client

	mu     sync.Mutex
	routes map[string]proxyRoute
}

// proxyRoute is where one token leads: the workspace's state address on
// the server, and the credential to present there.
type proxyRoute struct {
	target, user, pass string
}

// startStateProxy listens on a loopback port and serves until the process
// ends.
func startStateProxy() (*stateProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the state proxy: %w", err)
	}
	p := &stateProxy{addr: ln.Addr().String(), routes: map[string]proxyRoute{},
		client: &http.Client{Timeout: 5 * time.Minute}}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return p, nil
}

// add opens a route and returns its base URL and the function that closes
// it.
func (p *stateProxy) add(r proxyRoute) (string, func()) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	p.mu.Lock()
	p.routes[token] = r
	p.mu.Unlock()
	return "http://" + p.addr + "/s/" + token, func() {
		p.mu.Lock()
		delete(p.routes, token)
		p.mu.Unlock()
	}
}

// forwardedHeaders are the request and response headers of Terraform's http
// backend protocol.
var forwardedHeaders = []string{"Content-Type", "Content-MD5"}

func (p *stateProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rest, ok := strings.CutPrefix(req.URL.Path, "/s/")
	token, suffix, _ := strings.Cut(rest, "/")
	p.mu.Lock()
	route, found := p.routes[token]
	p.mu.Unlock()
	if !ok || !found || (suffix != "" && suffix != "lock") {
		http.Error(w, "no such state route (the step has ended)", http.StatusForbidden)
		return
	}
	target := route.target
	if suffix != "" {
		target += "/" + suffix
	}
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, target, req.Body)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	out.ContentLength = req.ContentLength
	for _, h := range forwardedHeaders {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	out.SetBasicAuth(route.user, route.pass)
	resp, err := p.client.Do(out)
	if err != nil {
		// Terraform retries a 5xx (retry_max), as it would a lost server.
		http.Error(w, "the terratask server is unreachable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range forwardedHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}
