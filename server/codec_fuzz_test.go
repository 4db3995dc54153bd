package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/codec/control"
)

// FuzzCodecRoute sends arbitrary bodies to the codec routes: the answer is a
// 200 with payloads, or a 4xx with the seed's error body, never a 500 or a
// panic.
func FuzzCodecRoute(f *testing.F) {
	for _, s := range []string{
		`{"payloads":[]}`,
		`{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"IngiCg=="}]}`,
		`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"MDAwMA=="},"data":"AAAA"}]}`,
		`{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA=="},"data":""}]}`,
		`{}`, `[]`, `{`, `null`, `{"payloads":[null]}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	cd, err := control.New(bytes.Repeat([]byte{5}, codec.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	ts := newTestServer(f, false, func(o *Options) { o.Codec = cd })
	f.Fuzz(func(t *testing.T, body []byte, decode bool) {
		path := "/api/v1/codec/encode"
		if decode {
			path = "/api/v1/codec/decode"
		}
		hr := httptest.NewRequest("POST", path, bytes.NewReader(body))
		hr.Header.Set("Authorization", "UserKey k-admin-a")
		hr.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, hr)
		switch {
		case w.Code == 200:
			var out map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Fatalf("200 with a body that is not JSON: %q", w.Body)
			}
		case w.Code >= 400 && w.Code < 500:
			var e errBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d without the error body: %q", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
	})
}
