package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIRoutesAnswer fetches the OpenAPI document from the real server
// (no key needed) and calls every documented path and method: none may be
// unknown to the server (404 from no route, or 405).
func TestOpenAPIRoutesAnswer(t *testing.T) {
	t.Parallel()
	r := shared.call(t, http.MethodGet, "/api/v1/openapi.json", "", nil)
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: %d %v", r.code, r.header)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("document: %v %q", err, doc.OpenAPI)
	}
	// A live task for the {taskId} routes.
	created := shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, parkedBody("openapi", "agent-openapi"))
	if created.code != 200 {
		t.Fatalf("create: %d %s", created.code, created.body)
	}
	taskID := created.object(t)["id"].(string)
	values := map[string]string{"taskId": taskID, "agentId": "agent-openapi", "runnerId": "local",
		"org": "default", "workspace": "openapi-ws", "version": "1"}
	rcv := newHookServer(t, hookSecret) // a receiver for the webhook routes
	hookBody := []byte(`{"url":"` + rcv.URL + `","agent":"agent-openapi","secret":"` + hookSecret + `"}`)
	// Schedules for the {scheduleId} routes: a paused one to read, patch
	// and trigger, another to delete.
	values["scheduleId"], values["scheduleToDelete"] = openAPISchedule(t), openAPISchedule(t)
	// Policies for the {name} routes: one to read and write, another to
	// delete. They decide nothing (no task has their name) and read no
	// plan, and the walk's are removed after it: the dev is shared.
	values["name"], values["policyToDelete"] = "openapi-policy", "openapi-policy-gone"
	openAPIPolicy := []byte(`{"rego":"package openapi\n\nwarn contains \"openapi\" if input.terratask.task.name == \"no task has this name\"\n"}`)
	for _, name := range []string{values["name"], values["policyToDelete"]} {
		if r := shared.call(t, http.MethodPut, "/api/v1/policies/"+name, shared.key, openAPIPolicy); r.code != http.StatusCreated {
			t.Fatalf("policy %s: %d %s", name, r.code, r.body)
		}
	}
	t.Cleanup(func() { shared.call(t, http.MethodDelete, "/api/v1/policies/"+values["name"], shared.key, nil) })
	// Credential sets of the same names, attached to nothing, named by no
	// task.
	openAPICredentials := []byte(`{"env":{"OPENAPI_TOKEN":"openapi"},"workspaces":["no-task-uses-this"]}`)
	for _, name := range []string{values["name"], values["policyToDelete"]} {
		if r := shared.call(t, http.MethodPut, "/api/v1/credential-sets/"+name, shared.key, openAPICredentials); r.code != http.StatusCreated {
			t.Fatalf("credential set %s: %d %s", name, r.code, r.body)
		}
	}
	t.Cleanup(func() { shared.call(t, http.MethodDelete, "/api/v1/credential-sets/"+values["name"], shared.key, nil) })
	param := regexp.MustCompile(`\{([A-Za-z]+)\}`)
	calls := 0
	// In path and method order, so the state routes run as a story: read
	// (none yet), write version 1, unlock (nothing held), read the lock,
	// take it, list versions, read version 1.
	var paths []string
	for path := range doc.Paths {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		if strings.HasPrefix(path, "/api/v1/runner/") || path == "/api/v1/codec/session" {
			// A runner's credential only (an API key is a 401): the runner
			// processes of the e2e suite and server/runnerapi_test.go
			// drive it. dev's codec session takes its banner's token
			// (webui_test.go opens it).
			continue
		}
		if strings.HasPrefix(path, "/.well-known/") {
			// The OIDC issuer's documents: 404 on the shared dev, which
			// has no --oidc-issuer (the route matrix checks that; server's
			// TestOIDCWellKnownAndRunnerToken serves them).
			continue
		}
		var methods []string
		for method := range doc.Paths[path] {
			methods = append(methods, method)
		}
		sort.Strings(methods)
		for _, method := range methods {
			if method == "parameters" {
				continue
			}
			if strings.Contains(path, "{webhookId}") {
				// A webhook of its own for each call (one of them deletes it).
				values["webhookId"] = createHook(t, shared, rcv.URL, "agent-openapi").ID
			}
			url := param.ReplaceAllStringFunc(path, func(m string) string {
				v, ok := values[strings.Trim(m, "{}")]
				if !ok {
					t.Fatalf("%s: no value for %s", path, m)
				}
				return v
			})
			if strings.HasPrefix(path, "/api/v1/schedules/") && method == "delete" {
				url = strings.Replace(url, values["scheduleId"], values["scheduleToDelete"], 1)
			}
			if (path == "/api/v1/policies/{name}" || path == "/api/v1/credential-sets/{name}") && method == "delete" {
				url = strings.Replace(url, values["name"], values["policyToDelete"], 1)
			}
			var body []byte
			switch {
			case path == "/api/v1/schedules" && method == "post":
				body = scheduleBody("openapi create")
			case strings.HasPrefix(path, "/api/v1/schedules/") && method == "patch":
				body = []byte(`{"paused":true,"jitter":"1s"}`)
			case strings.HasSuffix(path, "/trigger"):
			case strings.HasSuffix(path, "/lock") && method != "get":
				body = []byte(`{"ID":"openapi-lock","Operation":"OperationTypeApply","Who":"e2e"}`)
			case strings.HasPrefix(path, "/api/v1/codec/"):
				body = []byte(`{"payloads":[]}`)
			case strings.HasPrefix(path, "/api/v1/state/") && method == "post":
				body = []byte(`{"version":4,"terraform_version":"1.11.4","serial":1,"lineage":"openapi","outputs":{},"resources":[]}`)
			case path == "/api/v1/webhooks" && method == "post":
				body = hookBody
			case strings.HasPrefix(path, "/api/v1/workspaces/") && method == "put":
				// openapi-ws: the state walk above wrote it with the admin key.
				body = []byte(`{"agents":["agent-openapi"]}`)
			case path == "/api/v1/policies/evaluate":
				body = []byte(`{"stage":"pre_plan","task":` + string(parkedBody("openapi dry run", "agent-openapi")) + `}`)
			case strings.HasPrefix(path, "/api/v1/policies/") && method == "put":
				body = openAPIPolicy
			case strings.HasPrefix(path, "/api/v1/credential-sets/") && method == "put":
				body = openAPICredentials
			case method == "post":
				body = parkedBody("openapi create", "agent-openapi")
			}
			r := shared.call(t, strings.ToUpper(method), url, shared.key, body)
			calls++
			// A parked task has not planned: its plan is a 404 of its own.
			noPlanYet := strings.HasSuffix(path, "/plan") && r.code == http.StatusNotFound && strings.Contains(string(r.body), "has not finished planning")
			if r.code == http.StatusMethodNotAllowed || (r.code == http.StatusNotFound && !noPlanYet) {
				t.Errorf("%s %s (%s): %d %s", strings.ToUpper(method), path, url, r.code, r.body)
			}
			if r.code >= 300 && method != "put" && !noPlanYet {
				t.Errorf("%s %s: %d %s", strings.ToUpper(method), url, r.code, r.body)
			}
			if method == "post" && r.code == 200 && strings.HasPrefix(path, "/api/v1/tasks") {
				shared.call(t, http.MethodPut, "/api/v1/tasks/"+r.object(t)["id"].(string)+"/cancel", shared.key, nil)
			}
		}
	}
	if calls < 11 {
		t.Fatalf("only %d documented operations", calls)
	}
}

// scheduleBody is a paused schedule whose template parks its tasks.
func scheduleBody(name string) []byte {
	b, _ := json.Marshal(map[string]any{"name": name, "cron": "@daily", "paused": true,
		"template": map[string]any{"name": name, "agent_id": "agent-openapi", "runner_id": "nobody-serves-this"}})
	return b
}

// openAPISchedule creates a schedule for the walk; it is deleted after.
func openAPISchedule(t *testing.T) string {
	t.Helper()
	r := shared.call(t, http.MethodPost, "/api/v1/schedules", shared.key, scheduleBody("openapi"))
	if r.code != 200 {
		t.Fatalf("create schedule: %d %s", r.code, r.body)
	}
	id := r.object(t)["id"].(string)
	t.Cleanup(func() {
		shared.call(t, http.MethodDelete, "/api/v1/schedules/"+id, shared.key, nil)
		// The walk's trigger started a task that waits for a runner.
		var tasks []Task
		shared.request(t, http.MethodGet, "/api/v1/tasks?schedule="+id, nil, &tasks)
		for _, tk := range tasks {
			shared.call(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", shared.key, nil)
		}
	})
	return id
}

// TestHealthAndReadiness checks /healthz and /readyz on the real binary:
// public, 200 while Temporal and the store answer.
func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	r := shared.call(t, http.MethodGet, "/healthz", "", nil)
	if r.code != 200 || r.object(t)["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.code, r.body)
	}
	r = shared.call(t, http.MethodGet, "/readyz", "", nil)
	if r.code != 200 {
		t.Fatalf("readyz: %d %s", r.code, r.body)
	}
	m := r.object(t)
	checks, _ := m["checks"].(map[string]any)
	if m["status"] != "ok" || checks["store"] != "ok" || checks["temporal"] != "ok" {
		t.Fatalf("readyz: %s", r.body)
	}
	// Both carry a request ID, echoed when the client sends one.
	r = shared.call(t, http.MethodGet, "/readyz", "", nil, "X-Request-ID", "e2e-ready-1")
	if r.header.Get("X-Request-ID") != "e2e-ready-1" {
		t.Fatalf("X-Request-ID %q", r.header.Get("X-Request-ID"))
	}
	if r = shared.call(t, http.MethodGet, "/healthz", "", nil); len(r.header.Get("X-Request-ID")) < 8 {
		t.Fatalf("no generated X-Request-ID: %v", r.header)
	}
}

// TestErrorsOnTheWire checks the transport-level errors of the real server:
// each is the seed's error body.
func TestErrorsOnTheWire(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		method, path string
		body         []byte
		header       []string
		status       int
		code         string
	}{
		{"GET", "/api/v1/nope", nil, nil, 404, "not_found"},
		{"DELETE", "/api/v1/tasks", nil, nil, 405, "method_not_allowed"},
		{"POST", "/api/v1/tasks", []byte(`{"name":`), nil, 400, "bad_request"},
		{"POST", "/api/v1/tasks", []byte(`{}`), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"POST", "/api/v1/tasks", []byte(`{"name":"` + strings.Repeat("x", 3<<20) + `"}`), nil, 413, "payload_too_large"},
		{"GET", "/api/v1/tasks", nil, []string{"Authorization", "Basic x"}, 401, "unauthorized"},
	} {
		r := shared.call(t, c.method, c.path, shared.key, c.body, c.header...)
		if code, _, _ := r.errorOf(t); r.code != c.status || code != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.code, r.body, c.status, c.code)
		}
	}
}
