package activities

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStateBackend is a state backend speaking the server's protocol (one
// workspace: its document and its lock), recording every request.
type fakeStateBackend struct {
	mu    sync.Mutex
	state []byte
	lock  []byte // the held lock's info; nil when unlocked
	seen  []seenStateReq
	// renewAnswer, when not 0, is the status a renewal gets.
	renewAnswer int
}

// seenStateReq is a request the backend got.
type seenStateReq struct {
	method, path, query, user, pass, contentType, body string
}

func (b *fakeStateBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, seenStateReq{r.Method, r.URL.Path, r.URL.RawQuery, user, pass, r.Header.Get("Content-Type"), string(body)})
	if !strings.HasSuffix(r.URL.Path, "/lock") {
		switch r.Method {
		case http.MethodGet:
			if b.state == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			_, _ = w.Write(b.state)
		case http.MethodPost:
			b.state = body
		}
		return
	}
	id, held := lockInfoID(body), lockInfoID(b.lock)
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Get("renew") == "true" && b.renewAnswer != 0:
		w.WriteHeader(b.renewAnswer)
		_, _ = w.Write([]byte(`{"ID":"other-lock","Who":"someone else"}`))
	case r.Method == http.MethodPost && b.lock != nil && held != id:
		w.WriteHeader(http.StatusLocked)
		_, _ = w.Write(b.lock)
	case r.Method == http.MethodPost && r.URL.Query().Get("renew") == "true" && b.lock == nil:
		w.WriteHeader(http.StatusConflict)
	case r.Method == http.MethodPost:
		b.lock = body
		_, _ = w.Write(body)
	case r.Method == http.MethodDelete && b.lock != nil && held != id:
		w.WriteHeader(http.StatusLocked)
		_, _ = w.Write(b.lock)
	default:
		b.lock = nil
	}
}

// requests returns the requests seen so far, and forgets them.
func (b *fakeStateBackend) requests() []seenStateReq {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.seen
	b.seen = nil
	return out
}

func (b *fakeStateBackend) locked() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lock != nil
}

func (b *fakeStateBackend) set(f func(b *fakeStateBackend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

const (
	testStateUser = "task-lease.4294967296"
	testStatePass = "s3cret-state-credential"
)

// proxyCall sends a request to a route of the proxy, as Terraform does.
func proxyCall(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestStateProxyRenewLock: a route remembers the lock request the server
// accepted, and renewLock re-sends it (renew=true, the route's credential)
// until an unlock of that lock succeeds; a refused or unreachable renewal
// is an error that carries no credential.
func TestStateProxyRenewLock(t *testing.T) {
	backend := &fakeStateBackend{}
	srv := httptest.NewServer(backend)
	defer srv.Close()
	p, err := startStateProxy()
	if err != nil {
		t.Fatal(err)
	}
	base, closeRoute := p.add(proxyRoute{target: srv.URL + "/api/v1/state/o/w", user: testStateUser, pass: testStatePass})
	route := p.route(base)
	if route == nil {
		t.Fatal("no route for the base URL add returned")
	}
	ctx := t.Context()
	wantRenewal := func(what string, held bool, errPart string) {
		t.Helper()
		got, err := route.renewLock(ctx)
		if got != held || (errPart == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), errPart)) {
			t.Fatalf("%s: renewLock = %v, %v; want %v and an error with %q", what, got, err, held, errPart)
		}
		if err != nil && (strings.Contains(err.Error(), testStatePass) || strings.Contains(err.Error(), "s3cret")) {
			t.Fatalf("%s: the error carries the credential: %v", what, err)
		}
	}

	// No lock held: nothing is sent.
	wantRenewal("before any lock", false, "")
	if reqs := backend.requests(); len(reqs) != 0 {
		t.Fatalf("a renewal without a lock sent %v", reqs)
	}

	// Terraform locks through the route; the renewal re-sends its body.
	lockA := `{"ID":"lock-a","Operation":"OperationTypeApply","Info":"","Who":"runner@host","Version":"1.11.4","Created":"2026-01-01T00:00:00Z","Path":""}`
	if code := proxyCall(t, "POST", base+"/lock", lockA); code != 200 {
		t.Fatalf("lock through the proxy: %d", code)
	}
	backend.requests()
	wantRenewal("with lock-a held", true, "")
	reqs := backend.requests()
	want := seenStateReq{"POST", "/api/v1/state/o/w/lock", "renew=true", testStateUser, testStatePass, "application/json", lockA}
	if len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("the renewal sent %+v, want %+v", reqs, want)
	}

	// A lock request the server refuses is not the lock held; an unlock of
	// another lock leaves it held.
	if code := proxyCall(t, "POST", base+"/lock", `{"ID":"lock-b"}`); code != http.StatusLocked {
		t.Fatalf("a second lock: %d, want 423", code)
	}
	if code := proxyCall(t, "DELETE", base+"/lock", `{"ID":"lock-c"}`); code != http.StatusLocked {
		t.Fatalf("unlock of another lock: %d, want 423", code)
	}
	backend.requests()
	wantRenewal("after a refused lock and unlock", true, "")
	if reqs := backend.requests(); len(reqs) != 1 || reqs[0].body != lockA {
		t.Fatalf("the renewal sent %+v, want lock-a's body", reqs)
	}

	// The server refuses a renewal (another holder took the lock over, or
	// it was broken): an error each time, naming the new holder.
	backend.set(func(b *fakeStateBackend) { b.renewAnswer = http.StatusLocked })
	wantRenewal("a renewal the server answers 423", true, "locked by other-lock")
	wantRenewal("the next one", true, "HTTP 423")
	backend.set(func(b *fakeStateBackend) { b.renewAnswer = http.StatusConflict })
	wantRenewal("a renewal the server answers 409", true, "no longer held")
	backend.set(func(b *fakeStateBackend) { b.renewAnswer = 0 })

	// Terraform's unlock of the lock ends it: nothing more is renewed.
	if code := proxyCall(t, "DELETE", base+"/lock", lockA); code != 200 {
		t.Fatalf("unlock through the proxy: %d", code)
	}
	backend.requests()
	wantRenewal("after the unlock", false, "")
	if reqs := backend.requests(); len(reqs) != 0 {
		t.Fatalf("a renewal after the unlock sent %v", reqs)
	}

	// The last accepted lock is the one renewed.
	if code := proxyCall(t, "POST", base+"/lock", `{"ID":"lock-d"}`); code != 200 {
		t.Fatalf("lock-d: %d", code)
	}
	backend.requests()
	wantRenewal("with lock-d held", true, "")
	if reqs := backend.requests(); len(reqs) != 1 || reqs[0].body != `{"ID":"lock-d"}` || reqs[0].pass != testStatePass {
		t.Fatalf("the renewal sent %+v, want lock-d's body", reqs)
	}

	// An unreachable server.
	srv.Close()
	wantRenewal("with the server gone", true, "unreachable")

	// A closed route is gone.
	closeRoute()
	if p.route(base) != nil {
		t.Fatal("the route outlives its close")
	}
}

// TestStateProxyRenewLockWaitsForTheExchange: a renewal waits for a lock
// exchange in flight on the route (here an unlock), so it never renews a
// lock the server is releasing; a renewal that cannot get its turn before
// its context ends is an error.
func TestStateProxyRenewLockWaitsForTheExchange(t *testing.T) {
	deleting, release := make(chan struct{}), make(chan struct{})
	backend := &fakeStateBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			close(deleting)
			<-release // a slow unlock
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	p, err := startStateProxy()
	if err != nil {
		t.Fatal(err)
	}
	base, closeRoute := p.add(proxyRoute{target: srv.URL + "/s", user: testStateUser, pass: testStatePass})
	defer closeRoute()
	route := p.route(base)
	if code := proxyCall(t, "POST", base+"/lock", `{"ID":"lock-a"}`); code != 200 {
		t.Fatalf("lock: %d", code)
	}
	unlocked := make(chan int)
	go func() { unlocked <- proxyCall(t, "DELETE", base+"/lock", `{"ID":"lock-a"}`) }()
	<-deleting

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if held, err := route.renewLock(short); !held || err == nil {
		t.Fatalf("a renewal that cannot get its turn: %v, %v", held, err)
	}
	renewed := make(chan error, 1)
	go func() {
		held, err := route.renewLock(t.Context())
		if held {
			err = errors.New("renewed a lock being released")
		}
		renewed <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if code := <-unlocked; code != 200 {
		t.Fatalf("unlock: %d", code)
	}
	if err := <-renewed; err != nil {
		t.Fatalf("a renewal behind the unlock: %v", err)
	}
	for _, r := range backend.requests() {
		if r.query == "renew=true" {
			t.Fatalf("a renewal reached the server: %+v", r)
		}
	}
}

// TestRenewStateLockOfTerraform: the real terraform binary on the runner's
// http backend settings, through a step's proxy route: while its apply
// holds the lock, the step's renewStateLock re-sends Terraform's own lock
// info; once Terraform has unlocked, nothing is held.
func TestRenewStateLockOfTerraform(t *testing.T) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed")
	}
	backend := &fakeStateBackend{}
	srv := httptest.NewServer(backend)
	defer srv.Close()

	s := &stepRun{r: &Runner{DataDir: t.TempDir()}}
	if held, err := s.renewStateLock(t.Context()); held || err != nil {
		t.Fatalf("a step without a route: %v, %v", held, err)
	}
	p, err := s.r.stateProxy()
	if err != nil {
		t.Fatal(err)
	}
	s.proxyBase, s.closeProxy = p.add(proxyRoute{target: srv.URL + "/api/v1/state/o/w", user: testStateUser, pass: testStatePass})

	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	cfg := `terraform {
  backend "http" {
    lock_method   = "POST"
    unlock_method = "DELETE"
    retry_max     = 0
  }
}
resource "terraform_data" "x" {
  provisioner "local-exec" {
    command = "while [ ! -f gate ]; do sleep 0.05; done"
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_HTTP_ADDRESS=" + s.proxyBase, "TF_HTTP_LOCK_ADDRESS=" + s.proxyBase + "/lock", "TF_HTTP_UNLOCK_ADDRESS=" + s.proxyBase + "/lock"}
	run := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Dir, cmd.Env = dir, env
		return cmd
	}
	if out, err := run("init", "-input=false").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	backend.requests()

	apply := run("apply", "-input=false", "-auto-approve")
	var out strings.Builder
	apply.Stdout, apply.Stderr = &out, &out
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- apply.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for !backend.locked() {
		if time.Now().After(deadline) {
			t.Fatalf("terraform took no lock:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var tfLock string
	for _, r := range backend.requests() {
		if r.method == "POST" && strings.HasSuffix(r.path, "/lock") {
			tfLock = r.body
		}
	}
	var info struct{ ID, Operation string }
	if err := json.Unmarshal([]byte(tfLock), &info); err != nil || info.ID == "" {
		t.Fatalf("terraform's lock request %q: %v", tfLock, err)
	}
	for range 2 {
		if held, err := s.renewStateLock(t.Context()); !held || err != nil {
			t.Fatalf("renewing terraform's lock: %v, %v", held, err)
		}
	}
	// (Terraform reads the state meanwhile.)
	var renewals []seenStateReq
	for _, r := range backend.requests() {
		if strings.HasSuffix(r.path, "/lock") {
			renewals = append(renewals, r)
		}
	}
	if len(renewals) != 2 {
		t.Fatalf("renewals sent %+v", renewals)
	}
	for _, r := range renewals {
		if r.method != "POST" || r.query != "renew=true" || r.body != tfLock || r.user != testStateUser || r.pass != testStatePass {
			t.Fatalf("a renewal sent %+v, want terraform's lock info %s", r, tfLock)
		}
	}

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("apply: %v\n%s", err, out.String())
	}
	if backend.locked() {
		t.Fatal("terraform left its lock")
	}
	backend.requests()
	if held, err := s.renewStateLock(t.Context()); held || err != nil {
		t.Fatalf("after terraform unlocked: %v, %v", held, err)
	}
	if reqs := backend.requests(); len(reqs) != 0 {
		t.Fatalf("a renewal after the unlock sent %+v", reqs)
	}

	// A finished step has no route.
	s.closeProxy()
	if held, err := s.renewStateLock(t.Context()); held || err != nil {
		t.Fatalf("a finished step: %v, %v", held, err)
	}
}
