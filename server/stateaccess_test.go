package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TestStateBackendAccess checks who may reach which state route.
func TestStateBackendAccess(t *testing.T) {
	ts := newTestServer(t, false, func(o *Options) { o.MaxStateBytes = 1024 })
	const org, ws = "org-a", "ws"
	base := "/api/v1/state/" + org + "/" + ws
	ts.addTask(t, store.Task{ID: "task-live", Org: org, Status: task.StatusRunning})
	doc := `{"version":4,"serial":1,"lineage":"l","resources":[]}`

	cases := []struct {
		name   string
		w      *httptest.ResponseRecorder
		status int
	}{
		{"no state yet", ts.stateReq(t, "GET", base, "task-live", org, ws, ""), http.StatusNoContent},
		{"credential of another workspace", ts.stateReq(t, "GET", base, "task-live", org, "other", ""), http.StatusUnauthorized},
		{"credential of another org", ts.stateReq(t, "GET", base, "task-live", "org-b", ws, ""), http.StatusUnauthorized},
		{"credential of an unknown task", ts.stateReq(t, "GET", base, "task-ghost", org, ws, ""), http.StatusUnauthorized},
		{"no credentials", ts.do(t, req{method: "GET", path: base}), http.StatusUnauthorized},
		{"viewer reads the document", ts.do(t, req{method: "GET", path: base, key: "k-viewer-a"}), http.StatusForbidden},
		{"operator reads the document", ts.do(t, req{method: "GET", path: base, key: "k-operator-a"}), http.StatusForbidden},
		{"admin of another org", ts.do(t, req{method: "GET", path: base + "/versions", key: "k-admin-b"}), http.StatusForbidden},
		{"admin of another org reads the document", ts.do(t, req{method: "GET", path: base, key: "k-admin-b"}), http.StatusForbidden},
		{"invalid workspace name", ts.do(t, req{method: "GET", path: "/api/v1/state/org-a/w%20s", key: "k-admin-a"}), http.StatusBadRequest},
		{"dot-dot workspace", ts.do(t, req{method: "GET", path: "/api/v1/state/org-a/..", key: "k-admin-a"}), http.StatusBadRequest},
		{"credential without a fence", basicReq(ts, "GET", base, "task-live", ts.stateCred("task-live", org, ws)), http.StatusUnauthorized},
		// A runner host of org-b holds org-b's key only: what it derives
		// for org-a's workspace opens nothing.
		{"credential a runner of another org derives", basicReq(ts, "GET", base, secret.StateUser("task-live", defaultFence),
			orgBCred(t, ts, secret.StateUser("task-live", defaultFence), org, ws)), http.StatusUnauthorized},
		{"lock ID with a control character", ts.stateReq(t, "POST", base+"/lock", "task-live", org, ws, `{"ID":"a\u0000b"}`), http.StatusBadRequest},
		{"operator writes", ts.do(t, req{method: "POST", path: base, key: "k-operator-a", body: doc}), http.StatusForbidden},
		{"operator locks", ts.do(t, req{method: "POST", path: base + "/lock", key: "k-operator-a", body: `{"ID":"x"}`}), http.StatusForbidden},
		{"viewer unlocks", ts.do(t, req{method: "DELETE", path: base + "/lock?force=true", key: "k-viewer-a"}), http.StatusForbidden},
		{"credential lists versions", ts.stateReq(t, "GET", base+"/versions", "task-live", org, ws, ""), http.StatusForbidden},
		{"bad Content-MD5", ts.stateReq(t, "POST", base, "task-live", org, ws, doc, [2]string{"Content-MD5", "AAAA"}), http.StatusBadRequest},
		{"not a state document", ts.stateReq(t, "POST", base, "task-live", org, ws, `{"serial":"x"}`), http.StatusBadRequest},
		{"not JSON", ts.stateReq(t, "POST", base, "task-live", org, ws, `{`), http.StatusBadRequest},
		{"too large", ts.stateReq(t, "POST", base, "task-live", org, ws, `{"serial":1,"lineage":"`+strings.Repeat("x", 2000)+`"}`), http.StatusRequestEntityTooLarge},
		{"lock without ID", ts.stateReq(t, "POST", base+"/lock", "task-live", org, ws, `{"Who":"me"}`), http.StatusBadRequest},
		{"unlock without ID", ts.stateReq(t, "DELETE", base+"/lock", "task-live", org, ws, `{}`), http.StatusBadRequest},
		{"write with a lock ID when unlocked", ts.stateReq(t, "POST", base+"?ID=gone", "task-live", org, ws, doc), http.StatusConflict},
		{"bad version number", ts.do(t, req{method: "GET", path: base + "/versions/0", key: "k-admin-a"}), http.StatusBadRequest},
		{"missing version", ts.do(t, req{method: "GET", path: base + "/versions/7", key: "k-admin-a"}), http.StatusNotFound},
		{"unknown list parameter", ts.do(t, req{method: "GET", path: base + "/versions?sort=x", key: "k-viewer-a"}), http.StatusBadRequest},
		{"method not allowed", ts.do(t, req{method: "PUT", path: base, key: "k-admin-a"}), http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		if c.w.Code != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, c.w.Code, c.status, c.w.Body)
			continue
		}
		if c.status >= 400 && c.status != http.StatusLocked {
			decodeError(t, c.w)
		}
		if strings.Contains(c.w.Body.String(), ts.stateCred(secret.StateUser("task-live", defaultFence), org, ws)) {
			t.Errorf("%s: the answer carries the credential", c.name)
		}
	}
	// Nothing refused was stored.
	if _, err := ts.store.GetState(t.Context(), org, ws); err == nil {
		t.Fatal("a refused write stored a version")
	}
	// A retried write of the same document stores one version.
	for range 2 {
		if w := ts.stateReq(t, "POST", base, "task-live", org, ws, doc); w.Code != 200 {
			t.Fatalf("write: %d %s", w.Code, w.Body)
		}
	}
	if _, total, err := ts.store.ListStateVersions(t.Context(), org, ws, 10, 0); err != nil || total != 1 {
		t.Fatalf("versions after a repeated write: %d, %v", total, err)
	}
}

// basicReq is a request with the given basic-auth user and password.
func basicReq(ts *testServer, method, path, user, pass string) *httptest.ResponseRecorder {
	hr := httptest.NewRequest(method, path, nil)
	hr.SetBasicAuth(user, pass)
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, hr)
	return w
}

// orgBCred is what a runner of org-b derives for (org, ws).
func orgBCred(t *testing.T, ts *testServer, user, org, ws string) string {
	t.Helper()
	b, err := ts.opts.Secrets.Org("org-b")
	if err != nil {
		t.Fatal(err)
	}
	return b.StateCredential(user, org, ws)
}
