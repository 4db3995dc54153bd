package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/internal/runnerapi"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Values of the tests' credential sets: none may ever come back.
const (
	credEnvValue = "AKIA-cred-S3cret-env"
	credVarValue = "cred-S3cret-var"
)

func putSetBody(t testing.TB, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// awsSet is a set of env and a sensitive variable for agent-1 on prod-*.
func awsSet(t testing.TB) string {
	return putSetBody(t, map[string]any{"description": "AWS prod",
		"env":                 map[string]string{"AWS_SECRET_ACCESS_KEY": credEnvValue, "TF_VAR_region": "eu-west-1"},
		"sensitive_variables": map[string]any{"db_password": credVarValue, "nested": map[string]any{"k": credVarValue + "-2"}},
		"agents":              []string{"agent-1"}, "workspaces": []string{"prod-*"},
		"oidc": map[string]any{"provider": "aws", "aws_role_arn": "arn:aws:iam::123456789012:role/terratask"}})
}

func decodeSet(t testing.TB, body []byte) api.CredentialSet {
	t.Helper()
	var v api.CredentialSet
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return v
}

func TestCredentialSetsAPI(t *testing.T) {
	ts := newTestServer(t, false)
	ctx := context.Background()
	noValues := func(what string, b []byte) {
		t.Helper()
		for _, v := range []string{credEnvValue, credVarValue, "eu-west-1"} {
			if bytes.Contains(b, []byte(v)) {
				t.Fatalf("%s shows a value: %s", what, b)
			}
		}
	}
	w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a", body: awsSet(t)})
	noValues("PUT", w.Body.Bytes())
	v := decodeSet(t, w.Body.Bytes())
	if w.Code != 201 || v.Name != "aws-prod" || strings.Join(v.EnvNames, ",") != "AWS_SECRET_ACCESS_KEY,TF_VAR_region" ||
		strings.Join(v.SensitiveVariableNames, ",") != "db_password,nested" || v.CreatedBy != "admin-a" || v.UpdatedBy != "admin-a" ||
		v.OIDC == nil || v.OIDC.Audience != "sts.amazonaws.com" || v.Runners == nil || v.Attach {
		t.Fatalf("first put: %d %s", w.Code, w.Body)
	}
	// The store holds the values sealed under the org's key, never plain.
	stored, err := ts.store.GetCredentialSet(ctx, "org-a", "aws-prod")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(stored)
	noValues("the stored set", raw)
	box, _ := ts.opts.Secrets.Org("org-a")
	env, err := box.Open(stored.SealedEnv)
	if err != nil || env.Env["AWS_SECRET_ACCESS_KEY"] != credEnvValue || len(env.SensitiveVariables) != 0 {
		t.Fatalf("sealed env %v", err)
	}
	vars, err := box.Open(stored.SealedVariables)
	if err != nil || vars.SensitiveVariables["db_password"] != credVarValue || len(vars.Env) != 0 {
		t.Fatalf("sealed variables %v", err)
	}
	if _, err := ts.opts.Secrets.Open(stored.SealedEnv); err == nil {
		t.Fatal("sealed under the secret key itself, not the org's")
	}

	// GET and list show names; other roles and orgs see nothing.
	w = ts.do(t, req{method: "GET", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a"})
	noValues("GET", w.Body.Bytes())
	if w.Code != 200 || decodeSet(t, w.Body.Bytes()).Description != "AWS prod" {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "GET", path: "/api/v1/credential-sets", key: "k-admin-a"})
	var list api.CredentialSetList
	if json.Unmarshal(w.Body.Bytes(), &list) != nil || w.Code != 200 || len(list.CredentialSets) != 1 {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	noValues("list", w.Body.Bytes())
	for _, key := range []string{"k-viewer-a", "k-operator-a", "k-agent-a"} {
		for _, r := range []req{{method: "GET", path: "/api/v1/credential-sets"}, {method: "GET", path: "/api/v1/credential-sets/aws-prod"},
			{method: "PUT", path: "/api/v1/credential-sets/aws-prod", body: awsSet(t)}, {method: "DELETE", path: "/api/v1/credential-sets/aws-prod"}} {
			r.key = key
			if w := ts.do(t, r); w.Code != 403 {
				t.Errorf("%s %s by %s: %d", r.method, r.path, key, w.Code)
			}
		}
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-b"}); w.Code != 404 {
		t.Fatalf("org B reads org A's set: %d %s", w.Code, w.Body)
	}
	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-b"}); w.Code != 404 {
		t.Fatalf("org B deletes org A's set: %d %s", w.Code, w.Body)
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/credential-sets", key: "k-admin-b"}); w.Code != 200 || strings.Contains(w.Body.String(), "aws-prod") {
		t.Fatalf("org B's list: %d %s", w.Code, w.Body)
	}

	// A PUT without values keeps them; {} removes them.
	w = ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a",
		body: `{"name":"aws-prod","workspaces":["prod-*","staging"],"attach":true,"sensitive_variables":null}`})
	v = decodeSet(t, w.Body.Bytes())
	if w.Code != 200 || len(v.EnvNames) != 2 || len(v.SensitiveVariableNames) != 2 || !v.Attach || len(v.Agents) != 0 || v.OIDC != nil || v.Description != "" {
		t.Fatalf("put keeping values: %d %s", w.Code, w.Body)
	}
	if again, _ := ts.store.GetCredentialSet(ctx, "org-a", "aws-prod"); again.SealedEnv != stored.SealedEnv || again.SealedVariables != stored.SealedVariables {
		t.Fatal("a put without values changed them")
	}
	w = ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a", body: `{"env":{}}`})
	if v = decodeSet(t, w.Body.Bytes()); w.Code != 200 || len(v.EnvNames) != 0 || len(v.SensitiveVariableNames) != 2 {
		t.Fatalf("put clearing env: %d %s", w.Code, w.Body)
	}
	if again, _ := ts.store.GetCredentialSet(ctx, "org-a", "aws-prod"); again.SealedEnv != "" {
		t.Fatal("env {} left values")
	}

	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a"}); w.Code != 204 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a"}); w.Code != 404 {
		t.Fatalf("second delete: %d %s", w.Code, w.Body)
	}
}

func TestCredentialSetValidation(t *testing.T) {
	ts := newTestServer(t, false)
	for _, c := range []struct{ path, body, field string }{
		{"bad..name!", `{}`, "name"},
		{"x", `{"name":"y"}`, "name"},
		{"x", `{"env":{"1BAD":"v"}}`, "env.1BAD"},
		{"x", `{"env":{"TF_LOG":"trace"}}`, "env.TF_LOG"},
		{"x", `{"env":{"TERRATASK_TASK_ID":"v"}}`, "env.TERRATASK_TASK_ID"},
		{"x", `{"env":{"A":1}}`, "body"},
		{"x", `{"sensitive_variables":{"a b":"v"}}`, "sensitive_variables.a b"},
		{"x", `{"env":{"TF_VAR_pw":"a"},"sensitive_variables":{"pw":"b"}}`, "sensitive_variables.pw"},
		{"x", `{"agents":["["]}`, "agents"},
		{"x", `{"runners":["a","a"]}`, "runners"},
		{"x", `{"workspaces":[""]}`, "workspaces"},
		{"x", `{"attach":true}`, "attach"},
		{"x", `{"unknown":1}`, "body"},
		{"x", `{"oidc":{"provider":"oracle"}}`, "oidc.provider"},
		{"x", `{"oidc":{"provider":"aws"}}`, "oidc.aws_role_arn"},
		{"x", `{"oidc":{"provider":"aws","aws_role_arn":"arn:aws:iam::12:role/x"}}`, "oidc.aws_role_arn"},
		{"x", `{"oidc":{"provider":"aws","aws_role_arn":"arn:aws:iam::123456789012:role/x","azure_client_id":"x"}}`, "oidc.azure_client_id"},
		{"x", `{"oidc":{"provider":"gcp","gcp_workload_provider":"pools/x"}}`, "oidc.gcp_workload_provider"},
		{"x", `{"oidc":{"provider":"azure","azure_client_id":"00000000-0000-0000-0000-000000000000","azure_tenant_id":"nope"}}`, "oidc.azure_tenant_id"},
		{"x", `{"oidc":{"provider":"generic"}}`, "oidc.audience"},
		{"x", `{"oidc":{"provider":"generic","audience":"has space"}}`, "oidc.audience"},
	} {
		w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/" + c.path, key: "k-admin-a", body: c.body})
		e := decodeError(t, w)
		got := e.Error.Details["field"]
		if got == nil {
			got = e.Error.Details["parameter"]
		}
		if w.Code != 400 || got != c.field {
			t.Errorf("%s %s: %d %s, want a 400 naming %s", c.path, c.body, w.Code, w.Body, c.field)
		}
	}
	// The providers' audiences, and GCP's resource name as given or full.
	for body, want := range map[string]string{
		`{"oidc":{"provider":"azure","azure_client_id":"00000000-0000-0000-0000-000000000001","azure_tenant_id":"00000000-0000-0000-0000-000000000002"}}`:                                                                "api://AzureADTokenExchange",
		`{"oidc":{"provider":"gcp","gcp_workload_provider":"//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool-1/providers/prov-1","gcp_service_account":"tf@proj.iam.gserviceaccount.com"}}`: "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool-1/providers/prov-1",
		`{"oidc":{"provider":"generic","audience":"https://vault.example.com"}}`:                                                                                                                                         "https://vault.example.com",
		`{"oidc":{"provider":"aws","aws_role_arn":"arn:aws-us-gov:iam::123456789012:role/path/tf","audience":"custom"}}`:                                                                                                 "custom",
	} {
		w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/oidc", key: "k-admin-a", body: body})
		v := decodeSet(t, w.Body.Bytes())
		if w.Code/100 != 2 || v.OIDC == nil || v.OIDC.Audience != want {
			t.Errorf("%s: %d %s, want audience %s", body, w.Code, w.Body, want)
		}
		if v.OIDC != nil && v.OIDC.Provider == "gcp" && strings.HasPrefix(v.OIDC.GCPWorkloadProvider, "//") {
			t.Errorf("gcp provider kept its prefix: %s", w.Body)
		}
	}
}

// startCapture records the input of every task the server starts.
type startCapture struct {
	*fakeTemporal
	mu     sync.Mutex
	inputs map[string]task.Input
}

func (c *startCapture) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	if len(args) == 1 {
		if in, ok := args[0].(task.Input); ok {
			c.mu.Lock()
			c.inputs[o.ID] = in
			c.mu.Unlock()
		}
	}
	return c.fakeTemporal.ExecuteWorkflow(ctx, o, wf, args...)
}

func (c *startCapture) input(t *testing.T, id string) task.Input {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.inputs[id]
	if !ok {
		t.Fatalf("task %s was not started", id)
	}
	return in
}

// TestTaskCredentialsAtCreate: a task names sets its agent, workspace and
// runner may use; attached sets join by workspace; names only reach the
// task's input, never values; a clash with the task's own values is a 400.
func TestTaskCredentialsAtCreate(t *testing.T) {
	capture := &startCapture{inputs: map[string]task.Input{}}
	ts := newTestServer(t, true, func(o *Options) {
		capture.fakeTemporal = o.Temporal.(*fakeTemporal)
		o.Temporal = capture
	})
	put := func(name, body string) {
		t.Helper()
		if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/" + name, key: "k-admin-a", body: body}); w.Code/100 != 2 {
			t.Fatalf("put %s: %d %s", name, w.Code, w.Body)
		}
	}
	put("aws-prod", awsSet(t))
	put("everyone", `{"env":{"SHARED_TOKEN":"t0k3n"}}`)
	put("attached-prod", `{"sensitive_variables":{"audit_key":"k"},"workspaces":["prod-*"],"attach":true}`)
	put("attached-bots", `{"env":{"BOT":"1"},"workspaces":["*"],"agents":["bot-*"],"attach":true}`)
	// Org B's set of the same name serves anyone: never org A's tasks.
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/b-only", key: "k-admin-b", body: `{"env":{"B":"b"}}`}); w.Code != 201 {
		t.Fatal(w.Body)
	}
	create := func(key, agent, ws string, creds []string, extra map[string]any) *httptest.ResponseRecorder {
		params := map[string]any{"files": map[string]string{"main.tf": ""}, "credentials": creds}
		if ws != "" {
			params["workspace"] = ws
		}
		for k, v := range extra {
			params[k] = v
		}
		return ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: key, body: putSetBody(t, map[string]any{
			"name": "n", "agent_id": agent, "runner_id": "local", "parameters": params})})
	}

	w := create("k-agent-a", "agent-1", "prod-eu", []string{"aws-prod", "everyone"}, nil)
	if w.Code != 200 {
		t.Fatalf("agent-1 on prod-eu: %d %s", w.Code, w.Body)
	}
	var tk api.Task
	_ = json.Unmarshal(w.Body.Bytes(), &tk)
	in := capture.input(t, tk.ID)
	if got := strings.Join(in.CredentialSets, ","); got != "aws-prod,everyone,attached-prod" || strings.Join(in.Params.Credentials, ",") != "aws-prod,everyone" {
		t.Fatalf("the task's sets %q (named %v)", got, in.Params.Credentials)
	}
	if raw, _ := json.Marshal(in); bytes.Contains(raw, []byte(credEnvValue)) || bytes.Contains(raw, []byte(credVarValue)) || in.SealedSecrets != "" {
		t.Fatalf("values in the task's input: %s", raw)
	}

	// Refusals name the set; a set that does not exist (or is another
	// org's) is a 400.
	for _, c := range []struct {
		key, agent, ws string
		creds          []string
		code           int
		set, scope     string
	}{
		{"k-operator-a", "agent-2", "prod-eu", []string{"aws-prod"}, 403, "aws-prod", "agents"},
		{"k-agent-a", "agent-1", "staging", []string{"everyone", "aws-prod"}, 403, "aws-prod", "workspaces"},
		{"k-agent-a", "agent-1", "", []string{"aws-prod"}, 403, "aws-prod", "workspaces"},
		{"k-agent-a", "agent-1", "prod-eu", []string{"b-only"}, 400, "b-only", ""},
		{"k-agent-a", "agent-1", "prod-eu", []string{"nope"}, 400, "nope", ""},
	} {
		w := create(c.key, c.agent, c.ws, c.creds, nil)
		e := decodeError(t, w)
		if w.Code != c.code || e.Error.Details["set"] != c.set || e.Error.Details["field"] != "parameters.credentials" ||
			(c.scope != "" && e.Error.Details["scope"] != c.scope) || !strings.Contains(e.Error.Message, c.set) {
			t.Errorf("%s for %s on %q with %v: %d %s", c.key, c.agent, c.ws, c.creds, w.Code, w.Body)
		}
	}
	// Attached sets apply by workspace (and agent) without being named.
	w = create("k-operator-a", "bot-7", "prod-us", nil, nil)
	_ = json.Unmarshal(w.Body.Bytes(), &tk)
	if w.Code != 200 || strings.Join(capture.input(t, tk.ID).CredentialSets, ",") != "attached-bots,attached-prod" {
		t.Fatalf("attached: %d %s %v", w.Code, w.Body, capture.inputs[tk.ID].CredentialSets)
	}
	w = create("k-operator-a", "agent-9", "", nil, nil)
	_ = json.Unmarshal(w.Body.Bytes(), &tk)
	if w.Code != 200 || capture.input(t, tk.ID).CredentialSets != nil {
		t.Fatalf("no sets: %d %s %v", w.Code, w.Body, capture.inputs[tk.ID].CredentialSets)
	}
	// A task may not override a set's value, nor two sets each other's.
	for _, c := range []struct {
		creds []string
		extra map[string]any
		msg   string
	}{
		{[]string{"everyone"}, map[string]any{"env": map[string]string{"SHARED_TOKEN": "mine"}}, "SHARED_TOKEN is set by both the task and credential set everyone"},
		{[]string{"aws-prod"}, map[string]any{"region": "us-east-1"}, "region is set by both the task and credential set aws-prod"},
		{nil, map[string]any{"sensitive_variables": map[string]any{"audit_key": "x"}}, "audit_key is set by both the task and credential set attached-prod"},
	} {
		w := create("k-agent-a", "agent-1", "prod-eu", c.creds, c.extra)
		if e := decodeError(t, w); w.Code != 400 || !strings.Contains(e.Error.Message, c.msg) || strings.Contains(w.Body.String(), "mine") {
			t.Errorf("clash %v %v: %d %s", c.creds, c.extra, w.Code, w.Body)
		}
	}
	for _, bad := range []any{"aws-prod", []any{1}, []string{"a", "a"}, []string{"bad name"}} {
		w := create("k-agent-a", "agent-1", "prod-eu", nil, map[string]any{"credentials": bad})
		if e := decodeError(t, w); w.Code != 400 || e.Error.Details["field"] != "parameters.credentials" {
			t.Errorf("credentials %v: %d %s", bad, w.Code, w.Body)
		}
	}
}

// TestRunnerCredentials: the runner API hands a step its sets, sealed,
// after checking them again; a set changed since refuses the step, and no
// other runner or org reaches them.
func TestRunnerCredentials(t *testing.T) {
	ts := newTestServer(t, false)
	srv := httptest.NewServer(ts.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a", body: awsSet(t)}); w.Code != 201 {
		t.Fatal(w.Body)
	}
	ts.addTask(t, store.Task{ID: "task-cred", Org: "org-a", AgentID: "agent-1", RunnerID: "r1", Status: task.StatusRunning})
	ts.addTask(t, store.Task{ID: "task-ended", Org: "org-a", AgentID: "agent-1", RunnerID: "r1", Status: task.StatusCompleted})
	r1 := runnerClient(t, ts, srv.URL, "org-a", "r1")
	want := store.CredentialRequest{TaskID: "task-cred", Workspace: "prod-eu", Sets: []string{"aws-prod"}}

	got, err := r1.TaskCredentials(ctx, want)
	if err != nil || len(got) != 1 || got[0].Name != "aws-prod" || got[0].OIDC == nil || got[0].OIDC.AWSRoleARN == "" {
		t.Fatalf("delivered %+v %v", got, err)
	}
	box, _ := ts.opts.Secrets.Org("org-a")
	env, err := box.Open(got[0].SealedEnv)
	if err != nil || env.Env["AWS_SECRET_ACCESS_KEY"] != credEnvValue {
		t.Fatalf("the runner's org key does not open the env: %v", err)
	}

	// Refused: another workspace, a set changed or deleted since.
	other := want
	other.Workspace = "staging"
	var refused *store.CredentialRefusedError
	if _, err := r1.TaskCredentials(ctx, other); !errors.As(err, &refused) || refused.Set != "aws-prod" || refused.Scope != "workspaces" || refused.Value != "staging" {
		t.Fatalf("another workspace: %v", err)
	}
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a", body: `{"agents":["agent-2"]}`}); w.Code != 200 {
		t.Fatal(w.Body)
	}
	if _, err := r1.TaskCredentials(ctx, want); !errors.As(err, &refused) || refused.Scope != "agents" || refused.Value != "agent-1" ||
		!strings.Contains(err.Error(), "credential set aws-prod") {
		t.Fatalf("agents changed: %v", err)
	}
	if w := ts.do(t, req{method: "DELETE", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a"}); w.Code != 204 {
		t.Fatal(w.Body)
	}
	if _, err := r1.TaskCredentials(ctx, want); !errors.As(err, &refused) || refused.Scope != "" || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("deleted: %v", err)
	}

	// No other runner or org, no ended task, no bad query.
	for name, c := range map[string]*runnerapi.Client{
		"another org's runner of the same ID": runnerClient(t, ts, srv.URL, "org-b", "r1"),
		"another runner of the org":           runnerClient(t, ts, srv.URL, "org-a", "r2"),
	} {
		if _, err := c.TaskCredentials(ctx, want); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ended := want
	ended.TaskID = "task-ended"
	var apiErr *runnerapi.Error
	if _, err := r1.TaskCredentials(ctx, ended); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("an ended task: %v", err)
	}
	for _, bad := range []store.CredentialRequest{
		{TaskID: "task-cred", Workspace: "../x", Sets: []string{"a"}},
		{TaskID: "task-cred", Workspace: "ws", Sets: []string{"bad name"}},
		{TaskID: "task-cred", Sets: []string{"a"}},
	} {
		if _, err := r1.TaskCredentials(ctx, bad); !errors.As(err, &apiErr) || apiErr.Status != 400 {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if w := ts.do(t, req{method: "GET", path: "/api/v1/runner/credentials/task-cred?workspace=w", key: "k-admin-a"}); w.Code != 401 {
		t.Errorf("an API key on the runner API: %d", w.Code)
	}
}

// TestScheduleCredentials: a schedule's template is checked as a create,
// and its action carries the sets' names.
func TestScheduleCredentials(t *testing.T) {
	ts, c := scheduleServer(t)
	if w := ts.do(t, req{method: "PUT", path: "/api/v1/credential-sets/aws-prod", key: "k-admin-a", body: awsSet(t)}); w.Code != 201 {
		t.Fatal(w.Body)
	}
	template := func(agent, ws string) string {
		return `{"name":"nightly","cron":"0 2 * * *","template":{"name":"n","agent_id":"` + agent + `","runner_id":"local",` +
			`"parameters":{"files":{"main.tf":"x"},"workspace":"` + ws + `","credentials":["aws-prod"]}}}`
	}
	w := ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-operator-a", body: template("agent-2", "prod-2")})
	if e := decodeError(t, w); w.Code != 403 || e.Error.Details["field"] != "template.parameters.credentials" || e.Error.Details["set"] != "aws-prod" {
		t.Fatalf("another agent's template: %d %s", w.Code, w.Body)
	}
	w = ts.do(t, req{method: "POST", path: "/api/v1/schedules", key: "k-agent-a", body: template("agent-1", "prod-1")})
	if w.Code != 200 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	_, in := scheduledInput(t, c, decodeSchedule(t, w.Body.Bytes()).ID)
	if strings.Join(in.CredentialSets, ",") != "aws-prod" {
		t.Fatalf("the template's sets %v", in.CredentialSets)
	}
}

// FuzzCredentialSetRoutes sends arbitrary bodies to PUT
// /credential-sets/{name}: a 2xx, or a 4xx with the error body, never a
// 500 or a panic, and never a value back.
func FuzzCredentialSetRoutes(f *testing.F) {
	for _, s := range []string{
		awsSet(f), `{}`, `[]`, `{`, `null`, `{"env":null}`, `{"env":{"A":"b"},"sensitive_variables":{"x":[1,{"y":null}]}}`,
		`{"agents":["a*","[b]"],"workspaces":["\\*"],"runners":["r?"],"attach":true}`,
		`{"oidc":{"provider":"gcp","gcp_workload_provider":"projects/1/locations/global/workloadIdentityPools/pool/providers/prov"}}`,
		`{"oidc":null,"description":"\u0000"}`, `{"env":{"TF_VAR_x":"1"},"sensitive_variables":{"x":2}}`,
	} {
		f.Add([]byte(s))
	}
	ts := newTestServer(f, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		hr := httptest.NewRequest("PUT", "/api/v1/credential-sets/fuzz", bytes.NewReader(body))
		hr.Header.Set("Authorization", "UserKey k-admin-a")
		hr.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, hr)
		switch {
		case w.Code == 200 || w.Code == 201:
			// The view, and nothing else: names, never values.
			var v api.CredentialSet
			dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil || v.Name != "fuzz" || v.EnvNames == nil {
				t.Fatalf("%d without a set: %q", w.Code, w.Body)
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
