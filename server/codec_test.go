package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/codec/control"
)

const uiOrigin = "http://127.0.0.1:8233"

func codecServer(t *testing.T, mod func(*Options)) (*httptest.Server, *control.Codec) {
	t.Helper()
	cd, err := control.New(bytes.Repeat([]byte{9}, codec.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, false, func(o *Options) {
		o.Codec = cd
		if mod != nil {
			mod(o)
		}
	})
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(srv.Close)
	return srv, cd
}

func post(t *testing.T, url, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// orgCodec is what a runner of org holds.
func orgCodec(t *testing.T, cd *control.Codec, org string) *codec.Codec {
	t.Helper()
	oc, err := cd.Org(org)
	if err != nil {
		t.Fatal(err)
	}
	return oc
}

func encryptedBody(t *testing.T, cd interface {
	DataConverter() converter.DataConverter
}, v any) string {
	t.Helper()
	p, err := cd.DataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decodeAnswer(t *testing.T, b []byte) string {
	t.Helper()
	var ps commonpb.Payloads
	if err := protojson.Unmarshal(b, &ps); err != nil || len(ps.Payloads) != 1 {
		t.Fatalf("answer %s: %v", b, err)
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(ps.Payloads[0], &s); err != nil {
		t.Fatalf("decoded payload is not plain JSON: %v", err)
	}
	return s
}

func TestCodecRoutesNeedAnAdminKey(t *testing.T) {
	srv, cd := codecServer(t, nil)
	body := encryptedBody(t, orgCodec(t, cd, "org-a"), "plaintext task name")
	code, _, b := post(t, srv.URL+"/api/v1/codec/decode", body, map[string]string{"Authorization": "UserKey k-admin-a"})
	if code != 200 || decodeAnswer(t, b) != "plaintext task name" {
		t.Fatalf("admin decode: %d %s", code, b)
	}
	for key, want := range map[string]int{"k-viewer-a": 403, "k-operator-a": 403, "": 401, "not-a-key": 401} {
		h := map[string]string{"Authorization": "UserKey " + key}
		if key == "" {
			h = nil
		}
		code, _, b := post(t, srv.URL+"/api/v1/codec/decode", body, h)
		if code != want || strings.Contains(string(b), "plaintext task name") {
			t.Errorf("key %q: %d %s, want %d", key, code, b, want)
		}
		var e errBody
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			t.Errorf("key %q: not the error body: %s", key, b)
		}
	}
	// Encode, then decode what it made.
	plain, _ := converter.GetDefaultDataConverter().ToPayload("to encrypt")
	pb, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{plain}})
	code, _, enc := post(t, srv.URL+"/api/v1/codec/encode", string(pb), map[string]string{"Authorization": "UserKey k-admin-a"})
	if code != 200 || strings.Contains(string(enc), "to encrypt") || !strings.Contains(string(enc), "YmluYXJ5L2VuY3J5cHRlZA") { // base64 "binary/encrypted"
		t.Fatalf("encode: %d %s", code, enc)
	}
	code, _, b = post(t, srv.URL+"/api/v1/codec/decode", string(enc), map[string]string{"Authorization": "UserKey k-admin-a"})
	if code != 200 || decodeAnswer(t, b) != "to encrypt" {
		t.Fatalf("decode of encode: %d %s", code, b)
	}
	// What the route encodes is org-a's: its runners read it.
	var ps commonpb.Payloads
	if err := protojson.Unmarshal(enc, &ps); err != nil || len(ps.Payloads) != 1 {
		t.Fatalf("encode answer: %s", enc)
	}
	var got string
	if err := orgCodec(t, cd, "org-a").DataConverter().FromPayload(ps.Payloads[0], &got); err != nil || got != "to encrypt" {
		t.Fatalf("org-a's runner reads the route's encoding: %q %v", got, err)
	}
}

// TestCodecRouteDecodesOnlyTheCallersOrg is the probe of the tenancy issue:
// org B's admin sent org A's workflow inputs to the codec route and read
// them. Now each key decodes its own org's payloads only; another org's, and
// the secret key's own (the control plane's), come back still encrypted.
func TestCodecRouteDecodesOnlyTheCallersOrg(t *testing.T) {
	srv, cd := codecServer(t, func(o *Options) {
		keys := []auth.Key{{Name: "agent-admin-a", Org: "org-a", Role: auth.RoleAdmin, Agent: "agent-1", Hash: auth.HashKey("k-agent-admin-a")}}
		for raw, k := range testKeys {
			k.Hash = auth.HashKey(raw)
			keys = append(keys, k)
		}
		kr, err := auth.NewKeyring(keys)
		if err != nil {
			t.Fatal(err)
		}
		o.Keys = kr
	})
	orgA := encryptedBody(t, orgCodec(t, cd, "org-a"), "org a's secret input")
	master := encryptedBody(t, cd.Master(), "the control plane's")
	for _, c := range []struct{ key, body, secret string }{
		{"k-admin-b", orgA, "org a's secret input"},
		{"k-admin-a", master, "the control plane's"},
		{"k-admin-b", master, "the control plane's"},
	} {
		code, _, b := post(t, srv.URL+"/api/v1/codec/decode", c.body, map[string]string{"Authorization": "UserKey " + c.key})
		if code != 200 {
			t.Fatalf("%s: %d %s", c.key, code, b)
		}
		if strings.Contains(string(b), c.secret) || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(`"`+c.secret))) {
			t.Errorf("%s read %q: %s", c.key, c.secret, b)
		}
		if !strings.Contains(string(b), "YmluYXJ5L2VuY3J5cHRlZA") {
			t.Errorf("%s: the payload did not come back encrypted: %s", c.key, b)
		}
	}
	// Org B's encode is under org B's key: org A's runner cannot read it.
	plain, _ := converter.GetDefaultDataConverter().ToPayload("from b")
	pb, _ := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{plain}})
	code, _, enc := post(t, srv.URL+"/api/v1/codec/encode", string(pb), map[string]string{"Authorization": "UserKey k-admin-b"})
	if code != 200 {
		t.Fatalf("encode: %d %s", code, enc)
	}
	var ps commonpb.Payloads
	if err := protojson.Unmarshal(enc, &ps); err != nil || len(ps.Payloads) != 1 {
		t.Fatalf("encode answer: %s", enc)
	}
	var got string
	if err := orgCodec(t, cd, "org-a").DataConverter().FromPayload(ps.Payloads[0], &got); !errors.Is(err, codec.ErrUnknownKey) {
		t.Fatalf("org a's runner decoded org b's payload: %q %v", got, err)
	}
	// An agent-bound admin may not use the codec: payloads are per org.
	code, _, b := post(t, srv.URL+"/api/v1/codec/decode", orgA, map[string]string{"Authorization": "UserKey k-agent-admin-a"})
	if code != 403 || strings.Contains(string(b), "org a's secret input") {
		t.Fatalf("agent-bound admin: %d %s", code, b)
	}
}

func TestCodecRouteErrors(t *testing.T) {
	srv, _ := codecServer(t, nil)
	admin := map[string]string{"Authorization": "UserKey k-admin-a"}
	// A payload that names org-a but is under another key.
	other, _ := codec.NewOrg("org-a", bytes.Repeat([]byte{3}, codec.KeySize))
	for name, c := range map[string]struct {
		body, contentType string
		want              int
	}{
		"bad json":      {`{"payloads": [`, "application/json", 400},
		"wrong type":    {`{}`, "text/plain", 415},
		"unknown key":   {encryptedBody(t, other, "x"), "application/json", 400},
		"empty payload": {`{"payloads": []}`, "application/json", 200},
	} {
		h := map[string]string{"Authorization": admin["Authorization"], "Content-Type": c.contentType}
		code, _, b := post(t, srv.URL+"/api/v1/codec/decode", c.body, h)
		if code != c.want {
			t.Errorf("%s: %d %s, want %d", name, code, b, c.want)
		}
		if c.want == 400 {
			var e errBody
			if json.Unmarshal(b, &e) != nil || e.Error.Details["field"] != "payloads" {
				t.Errorf("%s: %s", name, b)
			}
		}
	}
	// No codec configured: 404 with the error body.
	plain := newTestServer(t, false)
	w := plain.do(t, req{method: "POST", path: "/api/v1/codec/decode", key: "k-admin-a", body: `{"payloads":[]}`})
	if w.Code != 404 {
		t.Fatalf("no codec: %d", w.Code)
	}
}

func TestCodecCORSAndDevUI(t *testing.T) {
	const token = "the-token-dev-printed"
	srv, cd := codecServer(t, func(o *Options) {
		o.CodecOrigins = []string{"https://temporal-ui.example"}
		o.CodecSession = &CodecSession{Token: token, Org: "org-a", UIURL: uiOrigin, Origins: []string{uiOrigin}}
	})
	// Preflight from an allowed origin, and from another.
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/api/v1/codec/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, o := range []string{"https://temporal-ui.example", uiOrigin} {
		resp := preflight(o)
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != o ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace") {
			t.Fatalf("preflight %s: %d %v", o, resp.StatusCode, resp.Header)
		}
	}
	if resp := preflight("https://evil.example"); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight of another origin: %d %v", resp.StatusCode, resp.Header)
	}

	orgA := encryptedBody(t, orgCodec(t, cd, "org-a"), "shown in the dev UI")
	orgB := encryptedBody(t, orgCodec(t, cd, "org-b"), "org b's")
	// What anything on the machine can send (task code shares the host's
	// network): the UI's Origin from loopback, no key, no session. Refused.
	if code, _, b := post(t, srv.URL+"/api/v1/codec/decode", orgA, map[string]string{"Origin": uiOrigin}); code != 401 || strings.Contains(string(b), "shown in the dev UI") {
		t.Fatalf("the UI's origin without the session: %d %s", code, b)
	}
	// A wrong token opens no session.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(srv.URL + "/api/v1/codec/session?token=guess")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
	// The token sets the cookie and leads to the UI.
	resp, err = noRedirect.Get(srv.URL + "/api/v1/codec/session?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == codecSessionCookie {
			cookie = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != uiOrigin || cookie == nil || !cookie.HttpOnly || cookie.Path != codecPrefix {
		t.Fatalf("session: %d %v %+v", resp.StatusCode, resp.Header, cookie)
	}
	session := map[string]string{"Origin": uiOrigin, "Cookie": cookie.Name + "=" + cookie.Value}
	code, h, b := post(t, srv.URL+"/api/v1/codec/decode", orgA, session)
	if code != 200 || decodeAnswer(t, b) != "shown in the dev UI" || h.Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Fatalf("dev UI with its session: %d %v %s", code, h, b)
	}
	// The session is the org's: another org's payloads stay encrypted.
	if code, _, b := post(t, srv.URL+"/api/v1/codec/decode", orgB, session); code != 200 || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(`"org b's"`))) {
		t.Fatalf("dev UI's session on org b's payload: %d %s", code, b)
	}
	// The cookie counts only from the UI's origin.
	if code, _, _ := post(t, srv.URL+"/api/v1/codec/decode", orgA, map[string]string{"Origin": "https://evil.example", "Cookie": session["Cookie"]}); code != 401 {
		t.Fatalf("the session's cookie from another origin: %d", code)
	}
	// The other allowed origin is a deployed UI: it needs a key.
	if code, _, _ := post(t, srv.URL+"/api/v1/codec/decode", orgA, map[string]string{"Origin": "https://temporal-ui.example"}); code != 401 {
		t.Fatalf("deployed UI without a key: %d", code)
	}
	// A server without a session has no session route.
	plain := newTestServer(t, false, func(o *Options) { o.Codec = cd })
	if w := plain.do(t, req{method: "GET", path: "/api/v1/codec/session?token=" + token}); w.Code != 404 {
		t.Fatalf("session route without a session: %d", w.Code)
	}
}

func TestMetricsRoute(t *testing.T) {
	ts := newTestServer(t, false)
	if w := ts.do(t, req{method: "GET", path: "/metrics"}); w.Code != 404 {
		t.Fatalf("no metrics handler: %d", w.Code)
	}
	ts = newTestServer(t, false, func(o *Options) {
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "terratask_up 1\n") })
	})
	if w := ts.do(t, req{method: "GET", path: "/metrics"}); w.Code != 200 || w.Body.String() != "terratask_up 1\n" {
		t.Fatalf("metrics: %d %s", w.Code, w.Body)
	}
}
