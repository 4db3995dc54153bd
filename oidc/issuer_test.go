package oidc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
)

// clock is the issuer's clock in tests: it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2031, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newBox returns a secret box with a random key.
func newBox(t *testing.T) *secret.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// openStore opens a SQLite store at path, closed when t ends.
func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// env is an issuer served over TLS by an httptest server, on a real
// SQLite store and secret box, with a clock of its own.
type env struct {
	t      *testing.T
	clock  *clock
	dbPath string
	st     *sqlite.Store
	box    *secret.Box
	srv    *httptest.Server
	iss    *Issuer
}

// newEnv starts an issuer whose URL is the server's plus path.
func newEnv(t *testing.T, path string, opts ...Option) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), box: newBox(t), dbPath: filepath.Join(t.TempDir(), "store.db")}
	e.st = openStore(t, e.dbPath)
	var handler http.Handler = http.NotFoundHandler()
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	iss, err := New(e.srv.URL+path, e.st, e.box, append([]Option{WithClock(e.clock.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.iss, handler = iss, iss.Handler()
	return e
}

// verifier returns a relying party built with go-oidc against the live
// discovery document and JWKS: a new one each time, as a relying party
// whose JWKS cache is empty. now is its clock.
func (e *env) verifier(audience string, now func() time.Time) *gooidc.IDTokenVerifier {
	e.t.Helper()
	ctx := gooidc.ClientContext(context.Background(), e.srv.Client())
	p, err := gooidc.NewProvider(ctx, e.iss.URL())
	if err != nil {
		e.t.Fatalf("go-oidc NewProvider(%s): %v", e.iss.URL(), err)
	}
	return p.Verifier(&gooidc.Config{ClientID: audience, Now: now})
}

// mint mints c or fails the test.
func (e *env) mint(c Claims) (string, time.Time) {
	e.t.Helper()
	token, exp, err := e.iss.Mint(context.Background(), c)
	if err != nil {
		e.t.Fatalf("Mint: %v", err)
	}
	return token, exp
}

// get fetches path from the server.
func (e *env) get(method, path string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

// jwksKIDs returns the kids of the served JWKS, in order.
func (e *env) jwksKIDs() []string {
	e.t.Helper()
	resp, body := e.get(http.MethodGet, JWKSPath)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %s: %s", JWKSPath, resp.Status, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		e.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// storedKIDs returns the kids in the store, by epoch.
func storedKIDs(t *testing.T, st store.OIDCKeyStore) []string {
	t.Helper()
	keys, err := st.OIDCKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KID)
	}
	return kids
}

// header returns a token's protected header, unverified.
func header(t *testing.T, token string) jose.Header {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Protected
}

// payload returns a token's claims, unverified.
func payload(t *testing.T, token string) TokenClaims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c TokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func stepClaims() Claims {
	return Claims{
		Org: "acme:eu", Workspace: "prod", Agent: "bot@ci", Phase: PhaseApply,
		TaskID: "task-0001", RunnerID: "runner-eu-1", KeyName: "ci-deployer",
		Audience: AWSAudience, TTL: 10 * time.Minute,
	}
}

// TestMintVerifies: a relying party built with go-oidc, knowing only the
// issuer URL, verifies a minted token (issuer, audience, expiry, RS256 and
// the kid of the JWKS) and reads every claim; another audience, an expired
// token and a token of another issuer's keys are refused.
func TestMintVerifies(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	c := stepClaims()
	issued := e.clock.Now()
	token, exp := e.mint(c)
	if want := issued.Add(10 * time.Minute); !exp.Equal(want) {
		t.Errorf("Mint expires %v, want %v", exp, want)
	}

	idt, err := e.verifier(AWSAudience, e.clock.Now).Verify(ctx, token)
	if err != nil {
		t.Fatalf("go-oidc Verify: %v", err)
	}
	wantSub := "org:acme%3Aeu:workspace:prod:agent:bot@ci:run_phase:apply"
	if idt.Issuer != e.iss.URL() || idt.Subject != wantSub || !slices.Equal(idt.Audience, []string{AWSAudience}) ||
		!idt.Expiry.Equal(exp) || !idt.IssuedAt.Equal(issued) {
		t.Errorf("verified token: iss %q sub %q aud %v exp %v iat %v", idt.Issuer, idt.Subject, idt.Audience, idt.Expiry, idt.IssuedAt)
	}
	var got TokenClaims
	if err := idt.Claims(&got); err != nil {
		t.Fatal(err)
	}
	want := TokenClaims{
		Issuer: e.iss.URL(), Subject: wantSub, Audience: AWSAudience,
		IssuedAt: issued.Unix(), NotBefore: issued.Unix(), Expiry: exp.Unix(), ID: got.ID,
		Org: "acme:eu", Workspace: "prod", Agent: "bot@ci", RunPhase: "apply",
		TaskID: "task-0001", RunnerID: "runner-eu-1", Key: "ci-deployer",
	}
	if got != want {
		t.Errorf("claims:\n got %+v\nwant %+v", got, want)
	}
	if len(got.ID) < 22 {
		t.Errorf("jti %q: want 128 random bits", got.ID)
	}
	// The payload holds exactly the documented claims.
	var raw map[string]any
	if err := idt.Claims(&raw); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range raw {
		names = append(names, k)
	}
	slices.Sort(names)
	wantNames := slices.Clone(ClaimsSupported)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("claims %v, want %v", names, wantNames)
	}

	h := header(t, token)
	if h.Algorithm != "RS256" || h.ExtraHeaders["typ"] != "JWT" {
		t.Errorf("header alg %q typ %v, want RS256 JWT", h.Algorithm, h.ExtraHeaders["typ"])
	}
	if kids := e.jwksKIDs(); len(kids) == 0 || h.KeyID != kids[0] {
		t.Errorf("header kid %q, JWKS kids %v: want the first (signing) key", h.KeyID, kids)
	}

	// Another audience: refused.
	if _, err := e.verifier(AzureAudience, e.clock.Now).Verify(ctx, token); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("Verify with another audience: %v, want an audience error", err)
	}
	// A token of another issuer's keys (same URL, another store and
	// secret key): its kid is not in this issuer's JWKS.
	other, err := New(e.iss.URL(), openStore(t, filepath.Join(t.TempDir(), "other.db")), newBox(t), WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := other.Mint(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.verifier(AWSAudience, e.clock.Now).Verify(ctx, forged); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("a token signed by another issuer's key: %v, want a signature error", err)
	}
	// Expired: refused once the clock passes exp.
	e.clock.Add(10*time.Minute + time.Second)
	var expired *gooidc.TokenExpiredError
	if _, err := e.verifier(AWSAudience, e.clock.Now).Verify(ctx, token); !errors.As(err, &expired) {
		t.Errorf("Verify after exp: %v, want TokenExpiredError", err)
	}
}

// TestJTIUnique: every token has a jti of its own, even minted at the same
// instant for the same step.
func TestJTIUnique(t *testing.T) {
	e := newEnv(t, "")
	seen := map[string]bool{}
	for range 200 {
		token, _ := e.mint(stepClaims())
		jti := payload(t, token).ID
		if seen[jti] {
			t.Fatalf("jti %q minted twice", jti)
		}
		seen[jti] = true
	}
}

// TestTTL: the default TTL, the cut to MaxTTL, and StepTTL.
func TestTTL(t *testing.T) {
	e := newEnv(t, "")
	now := e.clock.Now()
	for _, c := range []struct {
		ttl, want time.Duration
	}{
		{0, DefaultTTL}, {90 * time.Second, 90 * time.Second}, {3 * time.Hour, DefaultMaxTTL},
	} {
		cl := stepClaims()
		cl.TTL = c.ttl
		token, exp := e.mint(cl)
		if want := now.Add(c.want); !exp.Equal(want) || payload(t, token).Expiry != want.Unix() {
			t.Errorf("TTL %v: expires %v (exp %d), want %v", c.ttl, exp, payload(t, token).Expiry, want)
		}
	}
	cl := stepClaims()
	cl.TTL = -time.Second
	if _, _, err := e.iss.Mint(context.Background(), cl); err == nil {
		t.Error("Mint with a negative TTL succeeded")
	}
	for limit, want := range map[time.Duration]time.Duration{
		0: DefaultTTL, 20 * time.Minute: 25 * time.Minute, 55 * time.Minute: time.Hour, 3 * time.Hour: time.Hour,
	} {
		if got := e.iss.StepTTL(limit); got != want {
			t.Errorf("StepTTL(%v) = %v, want %v", limit, got, want)
		}
	}
}

// TestSubject: sub's exact format, the escaping of ':' and what is
// refused.
func TestSubject(t *testing.T) {
	for _, c := range []struct {
		org, ws, agent, phase, want string
	}{
		{"acme", "prod", "deployer", "plan", "org:acme:workspace:prod:agent:deployer:run_phase:plan"},
		{"acme:eu", "prod.v2", "agent:7@ci", "apply", "org:acme%3Aeu:workspace:prod.v2:agent:agent%3A7@ci:run_phase:apply"},
		{"a+b", "", "x-y_z", "plan", "org:a+b:workspace::agent:x-y_z:run_phase:plan"},
	} {
		got, err := Subject(c.org, c.ws, c.agent, c.phase)
		if err != nil || got != c.want {
			t.Errorf("Subject(%q, %q, %q, %q) = %q, %v; want %q", c.org, c.ws, c.agent, c.phase, got, err, c.want)
		}
	}
	for _, c := range [][4]string{
		{"", "w", "a", "plan"}, {"o", "w", "", "plan"}, {"o", "w", "a", "destroy"}, {"o", "w", "a", ""},
		{"o%3A", "w", "a", "plan"}, {"o", "w*", "a", "plan"}, {"o", "w", "a?", "plan"}, {"o p", "w", "a", "plan"},
		{"o", "w/x", "a", "plan"}, {"ö", "w", "a", "plan"}, {strings.Repeat("o", 129), "w", "a", "plan"},
	} {
		if got, err := Subject(c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("Subject(%q) = %q, want an error", c, got)
		}
	}
	base := stepClaims()
	for name, bad := range map[string]func(*Claims){
		"no task":        func(c *Claims) { c.TaskID = "" },
		"no audience":    func(c *Claims) { c.Audience = "" },
		"audience space": func(c *Claims) { c.Audience = "a b" },
		"runner ctl":     func(c *Claims) { c.RunnerID = "r\n" },
		"long key":       func(c *Claims) { c.KeyName = strings.Repeat("k", 257) },
		"bad phase":      func(c *Claims) { c.Phase = "refresh" },
	} {
		c := base
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%s) = nil, want an error", name)
		}
	}
	if err := base.Validate(); err != nil {
		t.Errorf("Validate(valid claims) = %v", err)
	}
}

// TestDiscovery: the discovery document and JWKS as served: fields, cache
// headers, public keys only, methods; an issuer URL with a path serves
// below it and go-oidc discovers it.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, "")
	resp, body := e.get(http.MethodGet, DiscoveryPath)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Cache-Control") != "public, max-age=3600" {
		t.Fatalf("GET %s: %s %v", DiscoveryPath, resp.Status, resp.Header)
	}
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                e.srv.URL,
		"jwks_uri":                              e.srv.URL + "/.well-known/jwks.json",
		"response_types_supported":              []any{"id_token"},
		"subject_types_supported":               []any{"public"},
		"id_token_signing_alg_values_supported": []any{"RS256"},
		"scopes_supported":                      []any{"openid"},
	}
	for k, v := range want {
		if fmt.Sprint(d[k]) != fmt.Sprint(v) {
			t.Errorf("discovery %s = %v, want %v", k, d[k], v)
		}
	}
	if fmt.Sprint(d["claims_supported"]) != fmt.Sprint(ClaimsSupported) || len(d) != len(want)+1 {
		t.Errorf("discovery = %v", d)
	}

	resp, body = e.get(http.MethodGet, JWKSPath)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("GET %s: %s %v", JWKSPath, resp.Status, resp.Header)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS holds %d keys, want 1 (the signing key; the next comes half a period ahead): %s", len(set.Keys), body)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWKS key %v has private member %q", k["kid"], private)
			}
		}
		if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || k["kid"] == "" || k["n"] == nil || k["e"] != "AQAB" {
			t.Errorf("JWKS key %v", k)
		}
	}

	if resp, _ := e.get(http.MethodHead, JWKSPath); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD %s: %s", JWKSPath, resp.Status)
	}
	if resp, _ := e.get(http.MethodPost, DiscoveryPath); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST %s: %s", DiscoveryPath, resp.Status)
	}
	if resp, _ := e.get(http.MethodGet, "/.well-known/other"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /.well-known/other: %s", resp.Status)
	}

	// An issuer with a path (and a trailing '/', dropped).
	p := newEnv(t, "/oidc/")
	if p.iss.URL() != p.srv.URL+"/oidc" {
		t.Fatalf("URL() = %q", p.iss.URL())
	}
	if resp, _ := p.get(http.MethodGet, DiscoveryPath); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s outside the issuer's path: %s", DiscoveryPath, resp.Status)
	}
	token, _ := p.mint(stepClaims())
	if _, err := p.verifier(AWSAudience, p.clock.Now).Verify(context.Background(), token); err != nil {
		t.Errorf("go-oidc with an issuer path: %v", err)
	}
}

// TestNewRefuses: issuer URLs and options New refuses.
func TestNewRefuses(t *testing.T) {
	st, box := openStore(t, filepath.Join(t.TempDir(), "s.db")), newBox(t)
	for _, u := range []string{
		"", "terratask.example.com", "http://terratask.example.com", "https://", "ftp://x",
		"https://u:p@x.example.com", "https://x.example.com?a=b", "https://x.example.com#f",
	} {
		if _, err := New(u, st, box); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	for _, u := range []string{"https://x.example.com", "http://localhost:8080", "http://127.0.0.1:1", "http://[::1]:2"} {
		if _, err := New(u, st, box); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	for name, opt := range map[string]Option{
		"rotation":      WithRotation(time.Second),
		"publish ahead": WithPublishAhead(48 * time.Hour),
		"short ahead":   WithPublishAhead(time.Minute),
		"max ttl":       WithMaxTTL(time.Second),
		"default ttl":   WithDefaultTTL(2 * time.Hour),
		"leeway":        WithLeeway(-time.Second),
	} {
		if _, err := New("https://x.example.com", st, box, opt); err == nil {
			t.Errorf("New with a bad %s succeeded", name)
		}
	}
	if _, err := New("https://x.example.com", nil, box); err == nil {
		t.Error("New without a key store succeeded")
	}
}

// TestRotation walks the default schedule (rotation 24h, publish ahead
// 12h, MaxTTL 1h, leeway 5m): the next key is published 12h before it
// signs; after the rotation a token of the retired key still verifies
// while it may be valid (the key is still in the JWKS); once the
// retirement window (MaxTTL + Leeway) has passed the key is gone from the
// JWKS and its tokens fail even for a relying party whose clock says they
// are valid; a rotation period later the key is deleted from the store.
func TestRotation(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	t0 := e.clock.Now()
	at := func(d time.Duration) {
		t.Helper()
		if now := e.clock.Now(); now.After(t0.Add(d)) {
			t.Fatalf("clock at %v, past %v", now.Sub(t0), d)
		}
		e.clock.Add(t0.Add(d).Sub(e.clock.Now()))
	}

	// Epoch 1 signs at once, alone in the JWKS.
	first, _ := e.mint(stepClaims())
	kids := e.jwksKIDs()
	if len(kids) != 1 || header(t, first).KeyID != kids[0] {
		t.Fatalf("at start: JWKS %v, token kid %s", kids, header(t, first).KeyID)
	}
	k1 := kids[0]

	// Half a period before the rotation the next key is made and
	// published; k1 signs on.
	at(12*time.Hour - time.Second)
	if got := e.jwksKIDs(); !slices.Equal(got, []string{k1}) {
		t.Fatalf("JWKS at 11:59:59 %v, want [k1]", got)
	}
	at(12 * time.Hour)
	kids = e.jwksKIDs()
	if len(kids) != 2 || kids[0] != k1 {
		t.Fatalf("JWKS at 12h %v, want [k1 k2]", kids)
	}
	k2 := kids[1]

	// Just before the rotation: still k1. A token for a long step (1h).
	at(24*time.Hour - time.Minute)
	long := stepClaims()
	long.TTL = time.Hour
	late, lateExp := e.mint(long)
	lateIssued := e.clock.Now()
	if kid := header(t, late).KeyID; kid != k1 {
		t.Fatalf("token before the rotation signed by %s, want %s", kid, k1)
	}

	// At the rotation k2 signs, having been published 12h.
	at(24 * time.Hour)
	next, _ := e.mint(stepClaims())
	if kid := header(t, next).KeyID; kid != k2 {
		t.Fatalf("token after the rotation signed by %s, want %s", kid, k2)
	}
	if got := e.jwksKIDs(); !slices.Equal(got, []string{k1, k2}) {
		t.Fatalf("JWKS after the rotation %v, want [k1 k2]", got)
	}
	if _, err := e.verifier(AWSAudience, e.clock.Now).Verify(ctx, next); err != nil {
		t.Errorf("token of the new key: %v", err)
	}

	// 30 minutes on, the late token is valid and its (retired) key still
	// published: a relying party fetching the JWKS now verifies it.
	at(24*time.Hour + 30*time.Minute)
	if _, err := e.verifier(AWSAudience, e.clock.Now).Verify(ctx, late); err != nil {
		t.Errorf("token of the retired key within its life: %v", err)
	}

	// Until retirement + MaxTTL + Leeway (1h05m after the rotation) k1 is
	// published; then it is dropped.
	at(25*time.Hour + 5*time.Minute - time.Second)
	if got := e.jwksKIDs(); !slices.Equal(got, []string{k1, k2}) {
		t.Errorf("JWKS 1s before k1's window ends %v, want [k1 k2]", got)
	}
	at(25*time.Hour + 5*time.Minute)
	if got := e.jwksKIDs(); !slices.Equal(got, []string{k2}) {
		t.Errorf("JWKS when k1's window ends %v, want [k2]", got)
	}
	if !e.clock.Now().After(lateExp) {
		t.Fatalf("k1 dropped at %v before its last token expired (%v)", e.clock.Now(), lateExp)
	}
	// Its tokens no longer verify, even for a relying party whose clock
	// says they are valid: the key is unknown.
	if _, err := e.verifier(AWSAudience, func() time.Time { return lateIssued }).Verify(ctx, late); err == nil ||
		!strings.Contains(err.Error(), "signature") {
		t.Errorf("a token of a dropped key: %v, want a signature error", err)
	}

	// The next rotation: k3 published at 36h, signing at 48h.
	at(36 * time.Hour)
	kids = e.jwksKIDs()
	if len(kids) != 2 || kids[0] != k2 {
		t.Fatalf("JWKS at 36h %v, want [k2 k3]", kids)
	}
	k3 := kids[1]
	at(48 * time.Hour)
	if tok, _ := e.mint(stepClaims()); header(t, tok).KeyID != k3 {
		t.Errorf("token at 48h signed by %s, want k3", header(t, tok).KeyID)
	}

	// k1 stays stored a rotation period after it left the JWKS, then is
	// deleted.
	at(49*time.Hour + 5*time.Minute - time.Second)
	if err := e.iss.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := storedKIDs(t, e.st); !slices.Equal(got, []string{k1, k2, k3}) {
		t.Errorf("stored keys at 49h04m59s %v, want [k1 k2 k3]", got)
	}
	at(49*time.Hour + 5*time.Minute)
	if _, _, err := e.iss.Mint(ctx, stepClaims()); err != nil {
		t.Fatal(err)
	}
	if got := storedKIDs(t, e.st); !slices.Equal(got, []string{k2, k3}) {
		t.Errorf("stored keys at 49h05m %v, want [k2 k3]", got)
	}
}

// TestLongDowntime: after the servers were down longer than a rotation
// period, the key that signed last signs on until the next, made now, has
// been published PublishAhead; it is never used unpublished.
func TestLongDowntime(t *testing.T) {
	e := newEnv(t, "", WithRotation(time.Hour), WithPublishAhead(10*time.Minute))
	e.mint(stepClaims())
	if kids := e.jwksKIDs(); len(kids) != 1 {
		t.Fatalf("JWKS %v: with PublishAhead 10m of 1h, only the signing key at first", kids)
	}
	e.clock.Add(50 * time.Minute) // the next key is due: made, active at 1h
	kids := e.jwksKIDs()
	if len(kids) != 2 {
		t.Fatalf("JWKS at 50m %v, want the next key published", kids)
	}
	k2 := kids[1]
	e.clock.Add(3 * time.Hour) // down for 3h: k2 signs; k3 is made now
	tok, _ := e.mint(stepClaims())
	if kid := header(t, tok).KeyID; kid != k2 {
		t.Fatalf("after downtime signed by %s, want k2", kid)
	}
	kids = e.jwksKIDs()
	if len(kids) != 2 || kids[0] != k2 {
		t.Fatalf("JWKS after downtime %v, want [k2 k3] (k1 long retired)", kids)
	}
	k3 := kids[1]
	e.clock.Add(9 * time.Minute)
	if tok, _ := e.mint(stepClaims()); header(t, tok).KeyID != k2 {
		t.Errorf("k3 signed before it was published 10m")
	}
	e.clock.Add(time.Minute)
	if tok, _ := e.mint(stepClaims()); header(t, tok).KeyID != k3 {
		t.Errorf("k3 does not sign after it was published 10m")
	}
}

// TestReplicas: two issuers on one store (two server replicas, each with
// its own handle on the database) racing to make the first keys end with
// one key per epoch, sign with the same kid and serve the same JWKS; a
// restarted replica signs with it too; a replica with another secret key
// cannot open it and says so without key material.
func TestReplicas(t *testing.T) {
	e := newEnv(t, "")
	other, err := New(e.iss.URL(), openStore(t, e.dbPath), e.box, WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	// Both make the first keys at once.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, iss := range []*Issuer{e.iss, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := iss.Refresh(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if kids := storedKIDs(t, e.st); len(kids) != 1 {
		t.Fatalf("stored keys %v, want 1 (epoch 1)", kids)
	}
	a, _ := e.mint(stepClaims())
	b, _, err := other.Mint(context.Background(), stepClaims())
	if err != nil {
		t.Fatal(err)
	}
	if ka, kb := header(t, a).KeyID, header(t, b).KeyID; ka != kb {
		t.Fatalf("replicas sign with %s and %s", ka, kb)
	}
	setA, err := e.iss.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	setB, err := other.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(setA)
	jb, _ := json.Marshal(setB)
	if !bytes.Equal(ja, jb) {
		t.Errorf("replicas serve different JWKS:\n%s\n%s", ja, jb)
	}
	// The relying party verifies the other replica's token through this
	// replica's JWKS.
	if _, err := e.verifier(AWSAudience, e.clock.Now).Verify(context.Background(), b); err != nil {
		t.Errorf("token of the other replica: %v", err)
	}
	// Over rotations, both keep agreeing.
	for range 3 {
		e.clock.Add(DefaultRotation)
		a, _ := e.mint(stepClaims())
		b, _, err := other.Mint(context.Background(), stepClaims())
		if err != nil {
			t.Fatal(err)
		}
		if ka, kb := header(t, a).KeyID, header(t, b).KeyID; ka != kb {
			t.Fatalf("after a rotation replicas sign with %s and %s", ka, kb)
		}
	}

	// A restart: a new issuer on the store signs with the same key.
	restarted, err := New(e.iss.URL(), openStore(t, e.dbPath), e.box, WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := restarted.Mint(context.Background(), stepClaims())
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := e.mint(stepClaims()); header(t, a).KeyID != header(t, c).KeyID {
		t.Error("a restarted replica signs with another key")
	}

	// Another secret key: the keys do not open.
	wrong, err := New(e.iss.URL(), openStore(t, e.dbPath), newBox(t), WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = wrong.Mint(context.Background(), stepClaims())
	if err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("Mint with another secret key: %v, want a key that does not open", err)
	}
}

// TestKeysSealed: the private keys are stored sealed, bound to their kid:
// the database holds no private key bytes, a sealed key opens only with its
// own kid's context, and nothing printed of the issuer shows a key.
func TestKeysSealed(t *testing.T) {
	e := newEnv(t, "")
	token, _ := e.mint(stepClaims())
	e.clock.Add(DefaultRotation / 2) // the next key is made
	if err := e.iss.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys, err := e.st.OIDCKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("%d keys stored", len(keys))
	}
	var privs []*rsa.PrivateKey
	for _, k := range keys {
		der, err := e.box.OpenBytes(k.SealedKey, sealContext(k.KID))
		if err != nil {
			t.Fatalf("key %s does not open with its context: %v", k.KID, err)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, parsed.(*rsa.PrivateKey))
		other := keys[0].KID
		if other == k.KID {
			other = keys[1].KID
		}
		if _, err := e.box.OpenBytes(k.SealedKey, sealContext(other)); err == nil {
			t.Errorf("key %s opens with another kid's context", k.KID)
		}
		if _, err := e.box.OpenBytes(k.SealedKey, nil); err == nil {
			t.Errorf("key %s opens without context", k.KID)
		}
	}
	// A sealed key moved to the other key's row does not open there.
	swapped := keys[0]
	swapped.SealedKey = keys[1].SealedKey
	if _, err := openSigner(e.box, swapped); err == nil {
		t.Error("a sealed key moved to another kid opened")
	}

	// The database files (with the WAL) hold no private key material.
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	var db []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	for _, priv := range privs {
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		for name, secretBytes := range map[string][]byte{
			"prime": priv.Primes[0].Bytes(), "exponent": priv.D.Bytes(), "der": der[len(der)-64:],
			"d (base64url)": []byte(base64.RawURLEncoding.EncodeToString(priv.D.Bytes())[:40]),
		} {
			if bytes.Contains(db, secretBytes) {
				t.Errorf("the database holds a private key's %s", name)
			}
		}
		d := base64.RawURLEncoding.EncodeToString(priv.D.Bytes())[:40]
		for what, s := range map[string]string{
			"%v": fmt.Sprintf("%v", e.iss), "%+v": fmt.Sprintf("%+v", e.iss), "%#v": fmt.Sprintf("%#v", e.iss),
			"token": token,
		} {
			if strings.Contains(s, d) {
				t.Errorf("%s shows a private key", what)
			}
		}
	}
}

// flakyStore fails every call while down.
type flakyStore struct {
	KeyStore
	mu   sync.Mutex
	down bool
}

func (f *flakyStore) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *flakyStore) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("database is down")
	}
	return nil
}

func (f *flakyStore) OIDCKeys(ctx context.Context) ([]store.OIDCKey, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.KeyStore.OIDCKeys(ctx)
}

func (f *flakyStore) InsertOIDCKey(ctx context.Context, k store.OIDCKey) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	return f.KeyStore.InsertOIDCKey(ctx, k)
}

// TestStoreDown: while the store cannot be read, the keys read before keep
// serving as long as no key made since could have begun to sign
// (PublishAhead); then minting fails and the JWKS is a 503 nothing caches.
func TestStoreDown(t *testing.T) {
	clk := newClock()
	flaky := &flakyStore{KeyStore: openStore(t, filepath.Join(t.TempDir(), "s.db"))}
	iss, err := New("https://terratask.example.com", flaky, newBox(t), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)
	if _, _, err := iss.Mint(context.Background(), stepClaims()); err != nil {
		t.Fatal(err)
	}
	flaky.set(true)
	clk.Add(2 * time.Hour)
	if _, _, err := iss.Mint(context.Background(), stepClaims()); err != nil {
		t.Errorf("Mint with the store down 2h after reading the keys: %v", err)
	}
	resp, err := http.Get(srv.URL + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("JWKS with the store down: %s", resp.Status)
	}
	clk.Add(DefaultRotation)
	if _, _, err := iss.Mint(context.Background(), stepClaims()); err == nil || !strings.Contains(err.Error(), "database is down") {
		t.Errorf("Mint with the store down a day after reading the keys: %v", err)
	}
	resp, err = http.Get(srv.URL + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("JWKS with the store down a day: %s %q", resp.Status, resp.Header.Get("Cache-Control"))
	}
	flaky.set(false)
	if _, _, err := iss.Mint(context.Background(), stepClaims()); err != nil {
		t.Errorf("Mint once the store is back: %v", err)
	}
}
