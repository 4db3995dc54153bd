package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/task"
)

// policyAPI answers /api/v1/policies as the server's contract says, over
// policies kept in memory.
type policyAPI struct {
	mu       sync.Mutex
	versions map[string][]api.Policy // oldest first
	dir      map[string]bool         // managed by --policy-dir
	evaluate api.EvaluatePolicyRequest
}

func (p *policyAPI) fail(w http.ResponseWriter, status int, code, msg string, details map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: msg, Details: details}})
}

func (p *policyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Header.Get("Authorization") != "UserKey secret" {
		p.fail(w, http.StatusUnauthorized, "unauthorized", "no key", nil)
		return
	}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v1/policies")
	if !ok {
		p.fail(w, http.StatusNotFound, "not_found", "no route", nil)
		return
	}
	if rest == "" && r.Method == http.MethodGet {
		out := api.PolicyList{Policies: []api.Policy{}}
		for _, name := range sortedNames(p.versions) {
			if cur := p.current(name); cur != nil {
				c := *cur
				c.Rego = ""
				out.Policies = append(out.Policies, c)
			}
		}
		reply(http.StatusOK, out)
		return
	}
	if rest == "/evaluate" && r.Method == http.MethodPost {
		p.evaluate = api.EvaluatePolicyRequest{}
		if err := json.NewDecoder(r.Body).Decode(&p.evaluate); err != nil {
			p.fail(w, http.StatusBadRequest, "bad_request", err.Error(), nil)
			return
		}
		for name, text := range p.evaluate.Policies {
			if strings.Contains(text, "syntax error") {
				p.fail(w, http.StatusBadRequest, "policy_invalid", "the policy does not compile", map[string]any{
					"problems": []api.PolicyProblem{{Policy: name, Line: 2, Column: 1, Message: "syntax error"}}})
				return
			}
		}
		reply(http.StatusOK, api.EvaluatePolicyResponse{Decision: task.PolicyDeny, Stage: p.evaluate.Stage,
			Results:  []task.PolicyResult{{Policy: "limits", Version: 2, Rule: task.RuleDeny, Message: "too many deletes"}},
			Policies: []task.PolicyRef{{Name: "limits", Version: 2, SHA256: "ab"}}})
		return
	}
	seg, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	name, err := url.PathUnescape(seg)
	if err != nil || name == "" {
		p.fail(w, http.StatusNotFound, "not_found", "no route", nil)
		return
	}
	cur := p.current(name)
	switch {
	case sub == "versions" && r.Method == http.MethodGet:
		vs := p.versions[name]
		if len(vs) == 0 {
			p.fail(w, http.StatusNotFound, "not_found", "Policy not found", map[string]any{"name": name})
			return
		}
		out := api.PolicyVersions{}
		for i := len(vs) - 1; i >= 0; i-- {
			v := vs[i]
			v.Rego = ""
			out.Versions = append(out.Versions, v)
		}
		reply(http.StatusOK, out)
	case sub == "" && r.Method == http.MethodGet:
		v := cur
		if q := r.URL.Query().Get("version"); q != "" {
			n, _ := strconv.Atoi(q)
			v = nil
			if n >= 1 && n <= len(p.versions[name]) && !p.versions[name][n-1].Deleted {
				v = &p.versions[name][n-1]
			}
		}
		if v == nil {
			p.fail(w, http.StatusNotFound, "not_found", "Policy not found", map[string]any{"name": name})
			return
		}
		reply(http.StatusOK, v)
	case sub == "" && r.Method == http.MethodPut:
		var req api.PutPolicyRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
			p.fail(w, http.StatusBadRequest, "bad_request", "bad body", nil)
			return
		}
		switch {
		case p.dir[name]:
			p.fail(w, http.StatusConflict, "conflict", "policy "+name+" is managed by --policy-dir", map[string]any{"name": name})
		case strings.Contains(req.Rego, "syntax error"):
			p.fail(w, http.StatusBadRequest, "policy_invalid", "the policy does not compile: "+name+".rego:3:5: syntax error", map[string]any{
				"problems": []api.PolicyProblem{{Policy: name, Line: 3, Column: 5, Message: "syntax error"}}})
		case cur != nil && cur.Rego == req.Rego && cur.Description == req.Description:
			reply(http.StatusOK, cur)
		default:
			v := api.Policy{Name: name, Version: len(p.versions[name]) + 1, SHA256: sha(req.Rego), Description: req.Description,
				Source: "api", CreatedBy: "admin", CreatedAt: "2025-01-02T03:04:05Z", Rego: req.Rego}
			p.versions[name] = append(p.versions[name], v)
			status := http.StatusOK
			if cur == nil {
				status = http.StatusCreated
			}
			reply(status, v)
		}
	case sub == "" && r.Method == http.MethodDelete:
		switch {
		case cur == nil:
			p.fail(w, http.StatusNotFound, "not_found", "Policy not found", map[string]any{"name": name})
		case p.dir[name]:
			p.fail(w, http.StatusConflict, "conflict", "policy "+name+" is managed by --policy-dir", map[string]any{"name": name})
		default:
			p.versions[name] = append(p.versions[name], api.Policy{Name: name, Version: len(p.versions[name]) + 1, Source: "api", Deleted: true})
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		p.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method, nil)
	}
}

// current is a policy's latest version, nil when it has none or it is
// deleted.
func (p *policyAPI) current(name string) *api.Policy {
	vs := p.versions[name]
	if len(vs) == 0 || vs[len(vs)-1].Deleted {
		return nil
	}
	return &vs[len(vs)-1]
}

func sortedNames(m map[string][]api.Policy) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sha(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }

func TestPolicies(t *testing.T) {
	fake := &policyAPI{versions: map[string][]api.Policy{}, dir: map[string]bool{}}
	c := newClient(t, fake)
	ctx := context.Background()

	ps, err := c.ListPolicies(ctx)
	if err != nil || len(ps) != 0 {
		t.Fatalf("empty list: %v %v", ps, err)
	}
	// Created, then a new version, then unchanged.
	p, created, err := c.PutPolicy(ctx, "aws.tags", "package aws.tags\n", "tags")
	if err != nil || !created || p.Version != 1 || p.Rego != "package aws.tags\n" || p.Description != "tags" {
		t.Fatalf("create: %+v %v %v", p, created, err)
	}
	p, created, err = c.PutPolicy(ctx, "aws.tags", "package aws.tags\n\n# v2\n", "tags")
	if err != nil || created || p.Version != 2 {
		t.Fatalf("update: %+v %v %v", p, created, err)
	}
	p, created, err = c.PutPolicy(ctx, "aws.tags", "package aws.tags\n\n# v2\n", "tags")
	if err != nil || created || p.Version != 2 {
		t.Fatalf("unchanged: %+v %v %v", p, created, err)
	}
	// A name that needs escaping stays one path segment.
	if _, created, err := c.PutPolicy(ctx, "odd name/x", "package odd\n", ""); err != nil || !created {
		t.Fatalf("escaped name: %v %v", created, err)
	}

	ps, err = c.ListPolicies(ctx)
	if err != nil || len(ps) != 2 || ps[0].Name != "aws.tags" || ps[0].Version != 2 || ps[0].Rego != "" || ps[1].Name != "odd name/x" {
		t.Fatalf("list: %+v %v", ps, err)
	}
	got, err := c.GetPolicy(ctx, "aws.tags", 0)
	if err != nil || got.Version != 2 || got.Rego != "package aws.tags\n\n# v2\n" {
		t.Fatalf("get latest: %+v %v", got, err)
	}
	got, err = c.GetPolicy(ctx, "aws.tags", 1)
	if err != nil || got.Version != 1 || got.Rego != "package aws.tags\n" {
		t.Fatalf("get version 1: %+v %v", got, err)
	}
	if got, err = c.GetPolicy(ctx, "odd name/x", 0); err != nil || got.Name != "odd name/x" {
		t.Fatalf("get escaped: %+v %v", got, err)
	}

	if err := c.DeletePolicy(ctx, "aws.tags"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx, "aws.tags", 0); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := c.DeletePolicy(ctx, "aws.tags"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	vs, err := c.PolicyVersions(ctx, "aws.tags")
	if err != nil || len(vs) != 3 || !vs[0].Deleted || vs[0].Version != 3 || vs[2].Version != 1 || vs[1].Rego != "" {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	if _, err := c.PolicyVersions(ctx, "none"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("versions of none: %v", err)
	}

	// Empty names never reach the server.
	if _, err := c.GetPolicy(ctx, "", 0); err == nil {
		t.Error("get without a name")
	}
	if _, _, err := c.PutPolicy(ctx, "", "package x", ""); err == nil {
		t.Error("put without a name")
	}
	if err := c.DeletePolicy(ctx, ""); err == nil {
		t.Error("delete without a name")
	}
	if _, err := c.PolicyVersions(ctx, ""); err == nil {
		t.Error("versions without a name")
	}
}

func TestPolicyErrors(t *testing.T) {
	fake := &policyAPI{versions: map[string][]api.Policy{}, dir: map[string]bool{"managed": true}}
	c := newClient(t, fake)
	ctx := context.Background()

	_, created, err := c.PutPolicy(ctx, "broken", "package broken\n\nsyntax error", "")
	var e *client.Error
	if created || !errors.As(err, &e) || e.Status != 400 || !errors.Is(err, client.ErrPolicyInvalid) || errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("invalid: %v %v", created, err)
	}
	want := []api.PolicyProblem{{Policy: "broken", Line: 3, Column: 5, Message: "syntax error"}}
	if got := client.Problems(err); !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %+v, want %+v", got, want)
	}
	if got := client.Problems(errors.New("other")); got != nil {
		t.Errorf("problems of another error: %+v", got)
	}

	if _, _, err := c.PutPolicy(ctx, "managed", "package managed\n", ""); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("dir-managed put: %v", err)
	}
	fake.versions["managed"] = []api.Policy{{Name: "managed", Version: 1, Source: "dir:/p", Rego: "package managed\n"}}
	if err := c.DeletePolicy(ctx, "managed"); !errors.Is(err, client.ErrConflict) || client.Problems(err) != nil {
		t.Fatalf("dir-managed delete: %v", err)
	}
}

func TestEvaluatePolicies(t *testing.T) {
	fake := &policyAPI{versions: map[string][]api.Policy{}, dir: map[string]bool{}}
	c := newClient(t, fake)
	ctx := context.Background()
	req := api.EvaluatePolicyRequest{
		Stage:    task.PolicyPostPlan,
		Task:     json.RawMessage(`{"name":"n","agent_id":"a","runner_id":"r"}`),
		Plan:     json.RawMessage(`{"resource_changes":[]}`),
		Policies: map[string]string{"limits": "package limits\n"},
	}
	out, err := c.EvaluatePolicies(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if out.Decision != task.PolicyDeny || out.Stage != task.PolicyPostPlan || len(out.Results) != 1 || out.Results[0].Message != "too many deletes" || len(out.Policies) != 1 {
		t.Fatalf("%+v", out)
	}
	sent := fake.evaluate
	if sent.Stage != req.Stage || string(sent.Task) != string(req.Task) || string(sent.Plan) != string(req.Plan) || !reflect.DeepEqual(sent.Policies, req.Policies) {
		t.Fatalf("sent %+v", sent)
	}

	_, err = c.EvaluatePolicies(ctx, api.EvaluatePolicyRequest{Stage: task.PolicyPrePlan, Task: req.Task, Policies: map[string]string{"bad": "syntax error"}})
	if got := client.Problems(err); len(got) != 1 || got[0].Policy != "bad" || got[0].Line != 2 {
		t.Fatalf("invalid draft: %v %+v", err, got)
	}
}
