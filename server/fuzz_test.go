package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// The parsers behind every request must never panic, and must answer either
// a value or a field error (a 400), nothing else.

func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{
		`{"name":"Deploy","agent_id":"a","runner_id":"r","metadata":{"k":"v"},"parameters":{"app_name":"x"}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","parameters":{"files":{"main.tf":"x"},"timeout":"1m","parallelism":3}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","parameters":{"env":{"A":"b"},"sensitive_variables":{"s":"v"}}}`,
		`{"name":null}`, `[]`, `{`, `""`, `{"name":"\u0000"}`, `{"parameters":{"targets":[1]}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","parameters":{"notify":{"url":"https://h:8443/cb?x=1","events":["task.completed"]}}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","parameters":{"notify":{"url":"https://u:p@h/"}}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","metadata":{"a":{"b":[1,2,{"c":null}]},"":"","\u00e9":true}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","metadata":{"k":"v","k":"w"}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","metadata":{"k":    [1,    2]}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","metadata":[]}`,
		`{"name":"n","agent_id":"a","runner_id":"r","metadata":{"k":1e999}}`,
	} {
		f.Add([]byte(s))
	}
	// At and past the limits: 64 and 65 keys, a key of 128 and 129 bytes, a
	// value of 1024 and 1025 bytes.
	meta := func(n, keyLen, valueLen int) []byte {
		m := map[string]any{}
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("%03d", i)
			m[k+strings.Repeat("k", max(keyLen-len(k), 0))] = strings.Repeat("v", valueLen-2)
		}
		b, _ := json.Marshal(map[string]any{"name": "n", "agent_id": "a", "runner_id": "r", "metadata": m})
		return b
	}
	for _, lim := range [][3]int{{64, 128, 1024}, {65, 3, 2}, {1, 129, 2}, {1, 3, 1025}} {
		f.Add(meta(lim[0], lim[1], lim[2]))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseCreate(body)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
				t.Fatalf("error is not a field error: %v", err)
			}
			return
		}
		if req.Name == "" || !validID(req.AgentID) || !validID(req.RunnerID) {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		for name := range req.Params.Files {
			if !filePattern.MatchString(name) {
				t.Fatalf("accepted file name %q", name)
			}
		}
		if _, err := json.Marshal(req.Params); err != nil {
			t.Fatalf("accepted params do not encode: %v", err)
		}
		if len(req.Metadata) > maxMetadataKeys {
			t.Fatalf("accepted %d metadata keys", len(req.Metadata))
		}
		for k, v := range req.Metadata {
			b, err := json.Marshal(v)
			if len(k) > maxMetadataKeyLen || err != nil || len(b) > maxMetadataValueBytes {
				t.Fatalf("accepted metadata %q (%d bytes of JSON, %v)", k, len(b), err)
			}
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"status=running&limit=10&page=2&sort=status&order=asc", "limit=0", "agent=a&runner=b", "page=99999999999", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a field error: %v", err)
			}
			return
		}
		if lq.Limit < 1 || lq.Limit > maxListLimit || lq.Page < 1 || lq.Offset < 0 {
			t.Fatalf("accepted %+v", lq)
		}
	})
}

func FuzzParseLogQuery(f *testing.F) {
	for _, s := range []string{"level=warn,error&limit=5", "start_time=2026-01-01T00:00:00Z&end_time=2026-01-02T00:00:00Z", "cursor=5", "level="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseLogQuery(q)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a field error: %v", err)
			}
			return
		}
		if lq.Limit < 1 || lq.Limit > maxLogLimit || lq.AfterID < 0 {
			t.Fatalf("accepted %+v", lq)
		}
	})
}

// FuzzStateRoutes sends arbitrary bodies, lock IDs and checksums to the
// state backend's routes with a valid task credential: every answer is a
// success or a 4xx with the error body (423 carries the holder's lock info),
// never a 5xx.
func FuzzStateRoutes(f *testing.F) {
	for _, s := range []struct {
		op         uint8
		query, md5 string
		body       []byte
	}{
		{0, "", "", []byte(`{"version":4,"serial":1,"lineage":"l","resources":[]}`)},
		{0, "ID=abc", "", []byte(`{"serial":2,"lineage":"l"}`)},
		{0, "ID=%zz", "AAAA", []byte(`{`)},
		{1, "", "", []byte(`{"ID":"abc","Operation":"apply","Who":"me"}`)},
		{2, "", "", []byte(`{"ID":"abc"}`)},
		{1, "", "", []byte(`{"ID":""}`)},
		{3, "", "", nil},
		{2, "force=true", "", []byte(`null`)},
	} {
		f.Add(s.op, s.query, s.md5, s.body)
	}
	ts := newTestServer(f, false, func(o *Options) { o.MaxStateBytes = 1 << 16 })
	ts.addTask(f, store.Task{ID: "task-fuzz", Org: "org-a", Status: task.StatusRunning})
	user := secret.StateUser("task-fuzz", defaultFence)
	cred := ts.stateCred(user, "org-a", "ws")
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/state/org-a/ws"}, {"POST", "/api/v1/state/org-a/ws/lock"},
		{"DELETE", "/api/v1/state/org-a/ws/lock"}, {"GET", "/api/v1/state/org-a/ws"},
	}
	f.Fuzz(func(t *testing.T, op uint8, query, md5 string, body []byte) {
		r := routes[int(op)%len(routes)]
		path := r.path
		if query != "" {
			path += "?" + url.PathEscape(query)
		}
		hr := httptest.NewRequest(r.method, "/", bytes.NewReader(body))
		hr.URL.Path, hr.URL.RawQuery = r.path, query
		hr.RequestURI = path
		hr.SetBasicAuth(user, cred)
		if md5 != "" && !strings.ContainsAny(md5, "\r\n\x00") {
			hr.Header.Set("Content-MD5", md5)
		}
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, hr)
		switch {
		case w.Code >= 500:
			t.Fatalf("%s %s: %d %s", r.method, path, w.Code, w.Body)
		case w.Code >= 400 && w.Code != 423:
			decodeError(t, w)
		}
	})
}

func FuzzParseDecision(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"comment":"ship it"}`, `{"comment":null}`, `{"comment":1}`, `{"x":1}`, `[`, `{"comment":"\u0000"}`, " \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		comment, err := parseDecision(body)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
				t.Fatalf("error is not a field error: %v", err)
			}
			return
		}
		if len(comment) > maxCommentLen || strings.ContainsRune(comment, 0) {
			t.Fatalf("accepted comment of %d bytes", len(comment))
		}
	})
}

func FuzzParsePlanFormat(f *testing.F) {
	for _, s := range [][2]string{{"", "text/plain"}, {"format=text", ""}, {"format=json", "text/plain;q=0.1, application/json"}, {"format=x", ""}, {"a=b", "*/*;q=2"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rawQuery, accept string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		format, err := parsePlanFormat(q, accept)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("not a field error: %v", err)
			}
			return
		}
		if format != planJSON && format != planText {
			t.Fatalf("format %q", format)
		}
	})
}
