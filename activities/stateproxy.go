package activities

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/terratask/terratask/store"
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
	routes map[string]*openRoute
}

// proxyRoute is where one token leads: the workspace's state address on
// the server, and the credential to present there.
type proxyRoute struct {
	target, user, pass string
}

// openRoute is a route of the proxy while it is open, and the state lock
// its Terraform holds: the body of the last lock request the server
// accepted (Terraform's lock info), until an unlock of that lock succeeds.
// renewLock re-sends it so the server renews the lock's lease (the step's
// renewStateLock, statelease.go).
type openRoute struct {
	proxyRoute
	client *http.Client
	// turn lets one lock exchange (a lock, an unlock or a renewal) through
	// at a time, so the lock held is the one the server has: a renewal
	// never races the unlock that ends the lock, nor a new lock.
	turn chan struct{}

	mu       sync.Mutex
	lockID   string
	lockBody []byte
}

// maxLockBody bounds the lock requests the proxy reads to remember (the
// server's own bound on lock info).
const maxLockBody = 64 << 10

// startStateProxy listens on a loopback port and serves until the process
// ends.
func startStateProxy() (*stateProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the state proxy: %w", err)
	}
	p := &stateProxy{addr: ln.Addr().String(), routes: map[string]*openRoute{},
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
	p.routes[token] = &openRoute{proxyRoute: r, client: p.client, turn: make(chan struct{}, 1)}
	p.mu.Unlock()
	return p.base(token), func() {
		p.mu.Lock()
		delete(p.routes, token)
		p.mu.Unlock()
	}
}

// base is the base URL of token's route.
func (p *stateProxy) base(token string) string { return "http://" + p.addr + "/s/" + token }

// route returns the open route whose base URL is base, or nil.
func (p *stateProxy) route(base string) *openRoute {
	token, ok := strings.CutPrefix(base, p.base(""))
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.routes[token]
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
	body, size := io.Reader(req.Body), req.ContentLength
	var lockReq []byte // a lock exchange's body, when read whole
	if suffix == "lock" && (req.Method == http.MethodPost || req.Method == http.MethodDelete) {
		// One lock exchange at a time on the route (see openRoute.turn).
		if !route.take(req.Context()) {
			http.Error(w, "the request was cancelled", http.StatusServiceUnavailable)
			return
		}
		defer route.give()
		b, err := io.ReadAll(io.LimitReader(req.Body, maxLockBody+1))
		if err != nil {
			http.Error(w, "could not read the request", http.StatusBadRequest)
			return
		}
		if len(b) <= maxLockBody {
			lockReq, body, size = b, bytes.NewReader(b), int64(len(b))
		} else {
			// Too large to be lock info the server takes: forward it as
			// it is, for the server's answer.
			body = io.MultiReader(bytes.NewReader(b), req.Body)
		}
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, target, body)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	out.ContentLength = size
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
	if lockReq != nil && resp.StatusCode/100 == 2 {
		route.settle(req.Method, lockReq)
	}
	for _, h := range forwardedHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// take waits for the route's turn of lock exchanges; false when ctx ended
// first.
func (r *openRoute) take(ctx context.Context) bool {
	select {
	case r.turn <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// give ends the turn take began.
func (r *openRoute) give() { <-r.turn }

// settle records a lock exchange the server accepted: a lock request is
// the lock held (the last one wins); an unlock of the held lock ends it.
func (r *openRoute) settle(method string, body []byte) {
	id := lockInfoID(body)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case method == http.MethodPost && id != "":
		r.lockID, r.lockBody = id, body
	case method == http.MethodDelete && id != "" && id == r.lockID:
		r.lockID, r.lockBody = "", nil
	}
}

// heldLock returns the lock request of the lock the route holds (nil for
// none).
func (r *openRoute) heldLock() (string, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lockID, r.lockBody
}

// renewLock renews the lease of the state lock the route holds: it
// re-sends the lock request the server accepted, with the route's
// credential, to the lock address with renew=true (which renews the lock
// held under that ID by the task, and never takes one). held reports
// whether the route holds a lock (false, with a nil error, when none is
// held: no lock request was accepted, or its unlock was); err is not nil
// when the renewal failed: the server refused it (423: another holder took
// the lock over; 409: it was released or broken) or could not be reached.
// Errors never carry the credential.
func (r *openRoute) renewLock(ctx context.Context) (held bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, store.StateLockLease)
	defer cancel()
	if !r.take(ctx) {
		id, _ := r.heldLock()
		return id != "", fmt.Errorf("renewing the state lock: waiting for the route's lock exchange: %w", ctx.Err())
	}
	defer r.give()
	id, body := r.heldLock()
	if id == "" {
		return false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.target+"/lock?renew=true", bytes.NewReader(body))
	if err != nil {
		return true, fmt.Errorf("renewing the state lock %s: %w", id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(r.user, r.pass)
	resp, err := r.client.Do(req)
	if err != nil {
		// The URL in a *url.Error holds no credential (it is in the
		// header); name only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("renewing the state lock %s: the terratask server is unreachable: %w", id, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxLockBody))
	switch {
	case resp.StatusCode/100 == 2:
		return true, nil
	case resp.StatusCode == http.StatusLocked:
		holder := lockInfoID(answer)
		if holder == "" {
			holder = "another lock"
		}
		return true, fmt.Errorf("renewing the state lock %s: the server refused it (HTTP 423): the state is locked by %s", id, holder)
	case resp.StatusCode == http.StatusConflict:
		return true, fmt.Errorf("renewing the state lock %s: the server refused it (HTTP 409): the lock is no longer held (released or broken)", id)
	}
	return true, fmt.Errorf("renewing the state lock %s: the server answered HTTP %d", id, resp.StatusCode)
}

// lockInfoID is the ID of Terraform's lock info, "" when body is none.
func lockInfoID(body []byte) string {
	var li struct {
		ID string `json:"ID"`
	}
	if json.Unmarshal(body, &li) != nil {
		return ""
	}
	return li.ID
}
