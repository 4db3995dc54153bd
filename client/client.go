package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/terratask/terratask/api"
)

// DefaultAddress is where `terratask dev` serves the API.
const DefaultAddress = "http://127.0.0.1:8080"

// maxBody bounds an answer read into memory (a state document may be large).
const maxBody = 256 << 20

// Client calls one terratask API. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	auth      string
	hc        *http.Client
	retry     Retry
	userAgent string
}

// Retry says how calls that are safe to repeat are retried.
type Retry struct {
	// Attempts is the number of tries in all (default 5; 1 disables retries).
	Attempts int
	// Base is the first backoff (default 200ms); each next one doubles, with
	// jitter, up to Max (default 5s). A Retry-After header of a 503 is
	// honoured up to Max.
	Base, Max time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates with an API key (Authorization: UserKey KEY).
func WithAPIKey(key string) Option {
	return func(c *Client) {
		c.auth = ""
		if key != "" {
			c.auth = "UserKey " + key
		}
	}
}

// WithAuthorization sends an Authorization header as given ("UserKey KEY"
// or "Bearer KEY"), for a caller that forwards its own caller's header.
func WithAuthorization(header string) Option { return func(c *Client) { c.auth = header } }

// WithHTTPClient sends requests with hc (default: a client without a
// timeout; bound calls with their context).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetry sets the retry policy.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the API at address, such as
// http://127.0.0.1:8080 (a path prefix is kept: https://host/terratask).
func New(address string, opts ...Option) (*Client, error) {
	if address == "" {
		address = DefaultAddress
	}
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: address %q: want a URL such as %s", address, DefaultAddress)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, hc: http.DefaultClient, userAgent: "terratask-go-client"}
	for _, o := range opts {
		o(c)
	}
	c.retry = c.retry.withDefaults()
	return c, nil
}

// With returns a copy of c with more options applied.
func (c *Client) With(opts ...Option) *Client {
	cp := *c
	for _, o := range opts {
		o(&cp)
	}
	cp.retry = cp.retry.withDefaults()
	return &cp
}

// Address is the API's base URL.
func (c *Client) Address() string { return c.base.String() }

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Base <= 0 {
		r.Base = 200 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 5 * time.Second
	}
	return r
}

// backoff is the wait before try n+1 (n from 1): exponential, full jitter
// over its upper half.
func (r Retry) backoff(n int) time.Duration {
	d := r.Base << min(n-1, 20)
	if d <= 0 || d > r.Max {
		d = r.Max
	}
	return d/2 + rand.N(d/2+1)
}

// request is one API call.
type request struct {
	method string
	path   string // below the base URL, already escaped
	query  url.Values
	body   []byte // resent as is on every attempt
	ctype  string
	accept string
	header http.Header
	// retry: the call may be repeated (a read, or a create with its
	// Idempotency-Key).
	retry bool
}

// response is a complete answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r, retrying as its retry flag allows, and returns the answer of
// a 2xx status; others become *Error.
func (c *Client) do(ctx context.Context, r request) (response, error) {
	attempts := 1
	if r.retry {
		attempts = c.retry.Attempts
	}
	for n := 1; ; n++ {
		resp, err := c.once(ctx, r)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			return response{}, ctx.Err()
		case err != nil:
			if n >= attempts {
				return response{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
			}
			wait = c.retry.backoff(n)
		case retryableStatus(resp.status) && n < attempts:
			wait = c.retry.backoff(n)
			if s, err := strconv.Atoi(resp.header.Get("Retry-After")); err == nil && s >= 0 {
				wait = min(time.Duration(s)*time.Second, c.retry.Max)
			}
		case resp.status >= 400:
			return resp, apiError(resp)
		default:
			return resp, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{}, ctx.Err()
		case <-t.C:
		}
	}
}

func retryableStatus(s int) bool {
	return s == http.StatusBadGateway || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// once sends r one time and reads the whole answer: a connection dropped
// while the body arrives is an error like a dropped request.
func (c *Client) once(ctx context.Context, r request) (response, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return response{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return response{}, fmt.Errorf("reading the answer: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (c *Client) newRequest(ctx context.Context, r request) (*http.Request, error) {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + r.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("client: path %q: %w", r.path, err)
	}
	u.Path = p
	u.RawQuery = r.query.Encode()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// apiError turns an error answer into *Error.
func apiError(resp response) error {
	e := &Error{Status: resp.status, RequestID: resp.header.Get("X-Request-ID")}
	var body api.ErrorBody
	if err := json.Unmarshal(resp.body, &body); err == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Details = body.Error.Code, body.Error.Message, body.Error.Details
		return e
	}
	e.Code = codeOfStatus(resp.status)
	e.Message = http.StatusText(resp.status)
	if resp.status == http.StatusLocked && json.Valid(resp.body) {
		e.Message = "the state is locked"
		e.Details = map[string]any{"lock": json.RawMessage(resp.body)}
	} else if s := strings.TrimSpace(string(resp.body)); s != "" && len(s) < 512 && !strings.ContainsAny(s, "<\x00") {
		e.Message += ": " + s
	}
	return e
}

// getJSON reads a resource into out.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) (response, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, retry: true})
	if err != nil {
		return resp, err
	}
	return resp, decode(resp, out)
}

// sendJSON sends a JSON body (nil: none) once and decodes the answer.
func (c *Client) sendJSON(ctx context.Context, method, path string, q url.Values, in, out any) (response, error) {
	r := request{method: method, path: path, query: q}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return response{}, fmt.Errorf("encoding the request: %w", err)
		}
		r.body, r.ctype = b, "application/json"
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return resp, err
	}
	return resp, decode(resp, out)
}

func decode(resp response, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("decoding the answer (HTTP %d): %w", resp.status, err)
	}
	return nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// errEmptyID is returned for a call without the ID it needs.
var errEmptyID = errors.New("client: empty ID")
