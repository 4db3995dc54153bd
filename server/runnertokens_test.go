package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/terratask/terratask/internal/runnerapi"
	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TestOIDCWellKnownAndRunnerToken: with an issuer, the server publishes
// its discovery document and JWKS without a key, and a runner mints a
// step's token over the runner API that go-oidc verifies against them,
// with the task's claims; the set's checks refuse as the credentials
// route's do. Without one, the documents are 404 and the route 501
// (store.ErrNoOIDCIssuer).
func TestOIDCWellKnownAndRunnerToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ts := newTestServer(t, false, func(o *Options) {
		iss, err := oidc.New(url, o.Store.(store.OIDCKeyStore), o.Secrets)
		if err != nil {
			t.Fatal(err)
		}
		if err := iss.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		o.OIDC = iss
	})
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: ts.Handler()}}
	srv.Start()
	t.Cleanup(srv.Close)
	ctx := context.Background()

	for _, p := range []string{oidc.DiscoveryPath, oidc.JWKSPath} {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, err)
		}
	}

	if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a", body: awsSet(t)}); w.Code != 201 {
		t.Fatal(w.Body)
	}
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/plain", key: "k-admin-a",
		body: putSetBody(t, map[string]any{"env": map[string]string{"X": "y"}})}); w.Code != 201 {
		t.Fatal(w.Body)
	}
	ts.addTask(t, store.Task{ID: "task-tok", Org: "org-a", AgentID: "agent-1", RunnerID: "r1", Status: task.StatusRunning})
	r1 := runnerClient(t, ts, srv.URL, "org-a", "r1")
	want := store.TokenRequest{TaskID: "task-tok", Workspace: "prod-eu", Set: "aws-prod", Phase: oidc.PhaseApply, TTL: 10 * time.Minute}
	token, exp, err := r1.TaskToken(ctx, want)
	if err != nil || token == "" || time.Until(exp) < 5*time.Minute || time.Until(exp) > 11*time.Minute {
		t.Fatalf("token: %q %v %v", token, exp, err)
	}
	p, err := gooidc.NewProvider(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := p.Verifier(&gooidc.Config{ClientID: oidc.AWSAudience}).Verify(ctx, token)
	if err != nil {
		t.Fatalf("go-oidc: %v", err)
	}
	var c oidc.TokenClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.Subject != "org:org-a:workspace:prod-eu:agent:agent-1:run_phase:apply" || c.Org != "org-a" || c.Agent != "agent-1" ||
		c.TaskID != "task-tok" || c.RunnerID != "r1" || c.RunPhase != "apply" || c.Workspace != "prod-eu" {
		t.Fatalf("claims %+v", c)
	}

	var refused *store.CredentialRefusedError
	other := want
	other.Workspace = "staging"
	if _, _, err := r1.TaskToken(ctx, other); !errors.As(err, &refused) || refused.Scope != "workspaces" {
		t.Fatalf("another workspace: %v", err)
	}
	plain := want
	plain.Set = "plain"
	if _, _, err := r1.TaskToken(ctx, plain); !errors.Is(err, store.ErrNotOIDCSet) {
		t.Fatalf("a set without oidc: %v", err)
	}
	if _, _, err := runnerClient(t, ts, srv.URL, "org-a", "r2").TaskToken(ctx, want); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another runner: %v", err)
	}
	var apiErr *runnerapi.Error
	bad := want
	bad.Phase = "destroy"
	if _, _, err := r1.TaskToken(ctx, bad); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Fatalf("a bad phase: %v", err)
	}
	if w := ts.do(t, req{method: "POST", path: "/api/v1/runner/tokens/task-tok", key: "k-admin-a", body: `{}`}); w.Code != 401 {
		t.Errorf("an API key on the runner API: %d", w.Code)
	}

	// In process (dev's runners): the same checks, the task's creator as key.
	local := oidc.LocalTokens{Tokens: oidc.TaskTokens{Issuer: ts.opts.OIDC, Sets: ts.store}, Store: ts.store}
	lreq := want
	lreq.Org, lreq.RunnerID, lreq.Key = "org-a", "r1", "ci-deployer"
	token, _, err = local.TaskToken(ctx, lreq)
	if err != nil {
		t.Fatal(err)
	}
	if idt, err = p.Verifier(&gooidc.Config{ClientID: oidc.AWSAudience}).Verify(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := idt.Claims(&c); err != nil || c.Key != "ci-deployer" {
		t.Fatalf("local claims %+v %v", c, err)
	}
	lreq.RunnerID = "r2"
	if _, _, err := local.TaskToken(ctx, lreq); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("local, another runner: %v", err)
	}

	// Without an issuer.
	plainTS := newTestServer(t, false)
	psrv := httptest.NewServer(plainTS.Handler())
	t.Cleanup(psrv.Close)
	for _, p := range []string{oidc.DiscoveryPath, oidc.JWKSPath} {
		if w := plainTS.do(t, req{method: "GET", path: p}); w.Code != 404 {
			t.Errorf("%s without an issuer: %d", p, w.Code)
		}
	}
	plainTS.addTask(t, store.Task{ID: "task-tok", Org: "org-a", AgentID: "agent-1", RunnerID: "r1", Status: task.StatusRunning})
	if _, _, err := runnerClient(t, plainTS, psrv.URL, "org-a", "r1").TaskToken(ctx, want); !errors.Is(err, store.ErrNoOIDCIssuer) ||
		!strings.Contains(err.Error(), "--oidc-issuer") {
		t.Fatalf("without an issuer: %v", err)
	}
	if _, _, err := (oidc.LocalTokens{Store: plainTS.store}).TaskToken(ctx, lreq); !errors.Is(err, store.ErrNoOIDCIssuer) {
		t.Fatalf("local without an issuer: %v", err)
	}
}
