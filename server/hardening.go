package server

import (
	"container/list"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/terratask/terratask/auth"
)

// The HTTP server's defences against clients that hold it, guess keys or
// open streams without end. The listener's own timeouts (the header and
// body read timeout, the idle timeout, TLS) are the http.Server's, set by
// internal/app; what depends on the route is here:
//
//   - Deadlines. A request's header and body must arrive within the
//     http.Server's ReadTimeout (net/http lifts the read deadline once the
//     body is read, so a handler may run longer; a state document gets
//     stateTransferTimeout from when its turn comes). Its answer must be
//     written within WriteTimeout of its start (a state document sent:
//     stateTransferTimeout; an upload's answer: WriteTimeout after the
//     upload's stateTransferTimeout). The http.Server's own WriteTimeout
//     stays 0: it would end streams, and reset idle HTTP/2 streams.
//     Streams (SSE follows and /mcp) have no write deadline while idle:
//     each write of theirs must complete within WriteTimeout, so a client
//     that stops reading loses its stream, and one that only listens keeps
//     it.
//   - Failed authentication is throttled per client address: after
//     AuthFailures failed key checks within AuthWindow, every request of the
//     address that needs a key is answered 429 with Retry-After, without
//     looking at its key, for AuthWindow. A right key gets the 429 too:
//     otherwise the lockout would slow no one (the answer to a right key
//     would still come at once). Task state credentials (the runners'
//     proxies) are checked as ever during a lockout: task code on a runner
//     host reaches the API from the host's address, and must not cost the
//     host's other tasks their state. The address is the connection's peer
//     (there is no trusted-proxy option: X-Forwarded-For is never read),
//     IPv6 addresses by their /64.
//   - Streams are capped per API key (MaxStreamsPerKey): one more is a 429.

// Defaults of the hardening options.
const (
	DefaultWriteTimeout     = 60 * time.Second
	DefaultAuthFailures     = 20
	DefaultAuthWindow       = time.Minute
	DefaultMaxStreamsPerKey = 16
	// authThrottleCap bounds the addresses the throttle remembers; the least
	// recently seen is forgotten first.
	authThrottleCap = 10000
	// stateTransferTimeout is how long a state document may take to arrive
	// or to be sent.
	stateTransferTimeout = stateReadTimeout
)

// inProcessKey marks requests the server makes to itself (see InProcess).
type inProcessKey struct{}

// InProcess marks a request that the process makes to its own API (the MCP
// endpoint's tools call the API in process, with the key of an /mcp request
// that was already authenticated and throttled): it is neither throttled
// nor counted, whatever its RemoteAddr says.
func InProcess(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), inProcessKey{}, true))
}

func isInProcess(r *http.Request) bool {
	v, _ := r.Context().Value(inProcessKey{}).(bool)
	return v
}

// clientAddr is the throttle's key of a request: its peer's IP address, an
// IPv6 address's /64 (one host commonly holds a whole /64).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// authThrottle counts failed authentications per client address.
type authThrottle struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	cap     int
	now     func() time.Time
	entries map[string]*list.Element
	lru     *list.List // of *throttleEntry, most recently seen first
}

type throttleEntry struct {
	addr     string
	start    time.Time // the window's first failure
	failures int
	until    time.Time // locked out until then (zero: not locked)
}

func newAuthThrottle(max int, window time.Duration, now func() time.Time) *authThrottle {
	return &authThrottle{max: max, window: window, cap: authThrottleCap, now: now,
		entries: map[string]*list.Element{}, lru: list.New()}
}

// locked reports whether addr is locked out, and for how much longer.
func (t *authThrottle) locked(addr string) (time.Duration, bool) {
	if t == nil {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.entries[addr]
	if !ok {
		return 0, false
	}
	e := el.Value.(*throttleEntry)
	now := t.now()
	switch {
	case now.Before(e.until):
		t.lru.MoveToFront(el)
		return e.until.Sub(now), true
	case !e.until.IsZero() || !now.Before(e.start.Add(t.window)):
		// The lockout or the window is over: the address starts afresh.
		t.lru.Remove(el)
		delete(t.entries, addr)
	}
	return 0, false
}

// fail counts a failed authentication of addr.
func (t *authThrottle) fail(addr string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	el, ok := t.entries[addr]
	var e *throttleEntry
	if ok {
		e = el.Value.(*throttleEntry)
		t.lru.MoveToFront(el)
		if now.Before(e.until) {
			return // locked out already: the lockout is not extended
		}
		if !e.until.IsZero() || !now.Before(e.start.Add(t.window)) {
			*e = throttleEntry{addr: addr, start: now}
		}
	} else {
		for t.lru.Len() >= t.cap {
			old := t.lru.Back()
			t.lru.Remove(old)
			delete(t.entries, old.Value.(*throttleEntry).addr)
		}
		e = &throttleEntry{addr: addr, start: now}
		t.entries[addr] = t.lru.PushFront(e)
	}
	e.failures++
	if e.failures >= t.max {
		e.until = now.Add(t.window)
	}
}

// size is how many addresses the throttle remembers.
func (t *authThrottle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// authLocked answers the 429 of a locked-out address and reports true; it
// runs before any key is looked at.
func (s *Server) authLocked(c *gin.Context) bool {
	if isInProcess(c.Request) {
		return false
	}
	retry, locked := s.throttle.locked(clientAddr(c.Request))
	if !locked {
		return false
	}
	secs := int((retry + time.Second - 1) / time.Second)
	c.Header("Retry-After", strconv.Itoa(secs))
	fail(c, http.StatusTooManyRequests, codeTooManyRequests,
		fmt.Sprintf("too many failed authentications from this address: try again in %d s", secs),
		map[string]any{"retry_after_seconds": secs})
	return true
}

// authFailed counts a failed key or credential check of the request.
func (s *Server) authFailed(c *gin.Context) {
	if !isInProcess(c.Request) {
		s.throttle.fail(clientAddr(c.Request))
	}
}

// streamCaps counts each API key's open streams.
type streamCaps struct {
	mu   sync.Mutex
	max  int // <= 0: no cap
	open map[string]int
}

// acquire takes one of key's streams; ok is false when it has max open.
func (sc *streamCaps) acquire(key string) (release func(), ok bool) {
	if sc.max <= 0 {
		return func() {}, true
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.open[key] >= sc.max {
		return nil, false
	}
	sc.open[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if sc.open[key]--; sc.open[key] <= 0 {
				delete(sc.open, key)
			}
		})
	}, true
}

// acquireStream takes a stream of the request's key, or answers the 429
// and reports false.
func (s *Server) acquireStream(c *gin.Context) (release func(), ok bool) {
	p, found := c.Get(ctxPrincipal)
	if !found || isInProcess(c.Request) {
		return func() {}, true
	}
	key := p.(auth.Principal)
	if release, ok = s.streamCaps.acquire(key.Org + "/" + key.Name); ok {
		return release, true
	}
	fail(c, http.StatusTooManyRequests, codeTooManyRequests,
		fmt.Sprintf("key %s has %d streams open, the most this server allows one key (--max-streams-per-key): close one first", key.Name, s.streamCaps.max),
		map[string]any{"max_streams": s.streamCaps.max})
	return nil, false
}

// deadlines sets the request's write deadline (see the top of this file).
// Writers that are no connection's (tests, the MCP tools' in-process
// calls) have none.
func (s *Server) deadlines(c *gin.Context) {
	if s.opts.WriteTimeout > 0 {
		_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	}
	c.Next()
}

// streamWriter is a stream's ResponseWriter: no write deadline while the
// stream is idle, and each write (and flush) must complete within d.
type streamWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func newStreamWriter(w http.ResponseWriter, d time.Duration) *streamWriter {
	sw := &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
	sw.idle()
	return sw
}

func (w *streamWriter) arm() {
	if w.d > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	}
}

func (w *streamWriter) idle() { _ = w.rc.SetWriteDeadline(time.Time{}) }

func (w *streamWriter) Write(p []byte) (int, error) {
	w.arm()
	defer w.idle()
	return w.ResponseWriter.Write(p)
}

func (w *streamWriter) WriteHeader(code int) {
	w.arm()
	defer w.idle()
	w.ResponseWriter.WriteHeader(code)
}

func (w *streamWriter) Flush() {
	w.arm()
	defer w.idle()
	_ = w.rc.Flush()
}

func (w *streamWriter) FlushError() error {
	w.arm()
	defer w.idle()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// streamHandler serves h (the MCP endpoint, whose answers stream) as a
// stream: counted against the key's cap, with a stream's deadlines.
func (s *Server) streamHandler(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		release, ok := s.acquireStream(c)
		if !ok {
			return
		}
		defer release()
		h.ServeHTTP(newStreamWriter(c.Writer, s.opts.WriteTimeout), c.Request)
	}
}
