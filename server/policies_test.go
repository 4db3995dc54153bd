package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

func putPolicyBody(rego string) string {
	b, _ := json.Marshal(api.PutPolicyRequest{Rego: rego, Description: "d"})
	return string(b)
}

const denyAgents = "package agents\n\ndeny contains msg if {\n\tinput.terratask.key.agent != \"\"\n\tmsg := sprintf(\"agent %s may not\", [input.terratask.key.agent])\n}\n"

func TestPolicyVersionsAndTenancy(t *testing.T) {
	ts := newTestServer(t, false)
	do := func(method, path, key, body string) (int, map[string]any) {
		w := ts.do(t, req{method: method, path: path, key: key, body: body})
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	code, p := do("PUT", "/api/v1/policies/agents", "k-admin-a", putPolicyBody(denyAgents))
	if code != 201 || p["version"] != float64(1) || p["source"] != "api" || p["created_by"] != "admin-a" || p["rego"] != denyAgents {
		t.Fatalf("first put: %d %v", code, p)
	}
	if code, p = do("PUT", "/api/v1/policies/agents", "k-admin-a", putPolicyBody(denyAgents)); code != 200 || p["version"] != float64(1) {
		t.Fatalf("unchanged put: %d %v", code, p)
	}
	v2 := strings.Replace(denyAgents, "may not", "may never", 1)
	if code, p = do("PUT", "/api/v1/policies/agents", "k-admin-a", putPolicyBody(v2)); code != 200 || p["version"] != float64(2) {
		t.Fatalf("second put: %d %v", code, p)
	}
	if code, p = do("GET", "/api/v1/policies/agents?version=1", "k-admin-a", ""); code != 200 || p["rego"] != denyAgents {
		t.Fatalf("version 1: %d %v", code, p)
	}
	// Another org's admin sees nothing of org A's, and has its own.
	if code, _ = do("GET", "/api/v1/policies/agents", "k-admin-b", ""); code != 404 {
		t.Fatalf("org B reads org A's policy: %d", code)
	}
	if code, p = do("GET", "/api/v1/policies", "k-admin-b", ""); code != 200 || len(p["policies"].([]any)) != 0 {
		t.Fatalf("org B's list: %d %v", code, p)
	}
	if code, _ = do("GET", "/api/v1/policies", "k-viewer-a", ""); code != 403 {
		t.Fatalf("a viewer lists policies: %d", code)
	}
	// The dry run: the agent-bound key is denied, the admin is not.
	task := `{"name":"n","agent_id":"agent-1","runner_id":"local"}`
	if code, p = do("POST", "/api/v1/policies/evaluate", "k-agent-a", `{"stage":"pre_plan","task":`+task+`}`); code != 200 || p["decision"] != "deny" {
		t.Fatalf("agent's dry run: %d %v", code, p)
	}
	res := p["results"].([]any)[0].(map[string]any)
	if res["policy"] != "agents" || res["version"] != float64(2) || res["message"] != "agent agent-1 may never" {
		t.Fatalf("result %v", res)
	}
	if code, p = do("POST", "/api/v1/policies/evaluate", "k-admin-a", `{"stage":"pre_plan","task":`+task+`}`); code != 200 || p["decision"] != "allow" {
		t.Fatalf("admin's dry run: %d %v", code, p)
	}
	// A draft replaces the stored policy of its name for the dry run only.
	draft, _ := json.Marshal(map[string]any{"stage": "pre_plan", "task": json.RawMessage(task),
		"policies": map[string]string{"agents": "package agents\n\nrequire_approval contains \"look\" if true\n"}})
	if code, p = do("POST", "/api/v1/policies/evaluate", "k-agent-a", string(draft)); code != 200 || p["decision"] != "require_approval" {
		t.Fatalf("draft dry run: %d %v", code, p)
	}
	if code, p = do("GET", "/api/v1/policies/agents", "k-admin-a", ""); code != 200 || p["version"] != float64(2) {
		t.Fatalf("the draft was stored: %d %v", code, p)
	}
	// A module that breaks the set is refused, naming line and column.
	code, p = do("PUT", "/api/v1/policies/clash", "k-admin-a", putPolicyBody("package agents\n\ndeny := 1\n"))
	if code != 400 {
		t.Fatalf("a clashing module: %d %v", code, p)
	}
	e := p["error"].(map[string]any)
	probs := e["details"].(map[string]any)["problems"].([]any)
	if e["code"] != "policy_invalid" || len(probs) == 0 || probs[0].(map[string]any)["line"].(float64) < 1 {
		t.Fatalf("compile error %v", e)
	}
	if code, _ = do("GET", "/api/v1/policies/clash", "k-admin-a", ""); code != 404 {
		t.Fatalf("a refused module was stored: %d", code)
	}
	if code, _ = do("DELETE", "/api/v1/policies/agents", "k-admin-a", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	code, p = do("GET", "/api/v1/policies/agents/versions", "k-admin-a", "")
	vs := p["versions"].([]any)
	if code != 200 || len(vs) != 3 || vs[0].(map[string]any)["deleted"] != true || vs[2].(map[string]any)["version"] != float64(1) {
		t.Fatalf("versions: %d %v", code, p)
	}
	if code, _ = do("DELETE", "/api/v1/policies/agents", "k-admin-a", ""); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
}

func TestPolicyDirOwnsItsPolicies(t *testing.T) {
	ts := newTestServer(t, false)
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("aws/tags.rego", "package tags\n\nwarn contains \"tag it\" if input.terratask.task.name == \"x\"\n")
	write("aws/tags_test.rego", "package tags_test\n\ntest_nothing if true\n")
	write("limits.rego", denyAgents)
	d, err := ParsePolicyDir("org-a=" + dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := SyncPolicyDir(ctx, ts.store, d)
	if err != nil || strings.Join(res.Created, ",") != "aws.tags,limits" {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	// The API may not change what the directory owns.
	w := ts.do(t, req{method: "PUT", path: "/api/v1/policies/limits", key: "k-admin-a", body: putPolicyBody("package limits\n")})
	if w.Code != 409 {
		t.Fatalf("PUT of a dir policy: %d %s", w.Code, w.Body)
	}
	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/policies/limits", key: "k-admin-a"}); w.Code != 409 {
		t.Fatalf("DELETE of a dir policy: %d %s", w.Code, w.Body)
	}
	// A change is a new version, a removed file a deletion, the rest unchanged.
	write("limits.rego", strings.Replace(denyAgents, "may not", "must not", 1))
	if err := os.Remove(filepath.Join(dir, "aws/tags.rego")); err != nil {
		t.Fatal(err)
	}
	res, err = SyncPolicyDir(ctx, ts.store, d)
	if err != nil || strings.Join(res.Updated, ",") != "limits" || strings.Join(res.Deleted, ",") != "aws.tags" {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	// A directory that does not compile changes nothing.
	write("broken.rego", "package broken\n\ndeny contains\n")
	if _, err := SyncPolicyDir(ctx, ts.store, d); err == nil || !strings.Contains(err.Error(), "broken.rego") {
		t.Fatalf("a broken directory synced: %v", err)
	}
	ps, err := ts.store.ListPolicies(ctx, "org-a")
	if err != nil || len(ps) != 1 || ps[0].Name != "limits" || ps[0].Version != 2 || !strings.HasPrefix(ps[0].Source, "dir:") {
		t.Fatalf("policies after a refused sync: %+v %v", ps, err)
	}
}

// FuzzPolicyRoutes sends arbitrary bodies to PUT /policies/{name} and the
// dry run: a 2xx, or a 4xx with the error body, never a 500 or a panic.
func FuzzPolicyRoutes(f *testing.F) {
	for _, s := range []string{
		putPolicyBody(denyAgents), `{"rego":""}`, `{"rego":"package"}`, `{}`, `[]`, `{`, `null`,
		`{"stage":"pre_plan","task":{"name":"n","agent_id":"a","runner_id":"r"}}`,
		`{"stage":"post_plan","task":{"name":"n","agent_id":"a","runner_id":"r"},"plan":{"resource_changes":[]}}`,
		`{"stage":"post_plan","task":{"name":"n","agent_id":"a","runner_id":"r"},"plan":[1]}`,
		`{"stage":"pre_plan","task":{"name":"n","agent_id":"a","runner_id":"r"},"policies":{"x":"package x\ndeny contains 1 if true"}}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	ts := newTestServer(f, false)
	f.Fuzz(func(t *testing.T, body []byte, evaluate bool) {
		method, path := "PUT", "/api/v1/policies/fuzz"
		if evaluate {
			method, path = "POST", "/api/v1/policies/evaluate"
		}
		hr := httptest.NewRequest(method, path, bytes.NewReader(body))
		hr.Header.Set("Authorization", "UserKey k-admin-a")
		hr.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, hr)
		switch {
		case w.Code == 200 || w.Code == 201:
			if evaluate {
				var out api.EvaluatePolicyResponse
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil ||
					!strings.Contains(task.PolicyAllow+task.PolicyDeny+task.PolicyRequireApproval+task.PolicyError, out.Decision) || out.Decision == "" {
					t.Fatalf("200 without a decision: %q", w.Body)
				}
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
