package server

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
)

// The parsers behind every request must never panic, and must answer either
// a value or a field error (a 400), nothing else.

func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{
		`{"name":"Deploy","agent_id":"a","runner_id":"r","metadata":{"k":"v"},"parameters":{"app_name":"x"}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","parameters":{"files":{"main.tf":"x"},"timeout":"1m","parallelism":3}}`,
		`{"name":"n","agent_id":"a","runner_id":"r","parameters":{"env":{"A":"b"},"sensitive_variables":{"s":"v"}}}`,
		`{"name":null}`, `[]`, `{`, `""`, `{"name":"\u0000"}`, `{"parameters":{"targets":[1]}}`,
	} {
		f.Add([]byte(s))
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
