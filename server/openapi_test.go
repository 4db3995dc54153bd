package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

// oaDoc is the embedded OpenAPI document, decoded generically.
type oaDoc map[string]any

func loadOpenAPI(t *testing.T) oaDoc {
	t.Helper()
	var d oaDoc
	dec := json.NewDecoder(bytes.NewReader(openAPI))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// resolve follows a local "$ref" ("#/components/...").
func (d oaDoc) resolve(t *testing.T, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = map[string]any(d)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			next, ok := cur.(map[string]any)[part]
			if !ok {
				t.Fatalf("unresolved $ref %s", ref)
			}
			cur = next
		}
		m, _ = cur.(map[string]any)
	}
	t.Fatalf("not an object: %v", v)
	return nil
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

// operations lists "METHOD /path" of the document.
func (d oaDoc) operations() map[string]map[string]any {
	ops := map[string]map[string]any{}
	for path, item := range d["paths"].(map[string]any) {
		for _, m := range httpMethods {
			if op, ok := item.(map[string]any)[m]; ok {
				ops[strings.ToUpper(m)+" "+path] = op.(map[string]any)
			}
		}
	}
	return ops
}

var ginParam = regexp.MustCompile(`:([A-Za-z]+)`)

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	d := loadOpenAPI(t)
	ops := d.operations()
	routes := map[string]bool{}
	for _, r := range newTestServer(t, false).router.Routes() {
		key := r.Method + " " + ginParam.ReplaceAllString(r.Path, "{$1}")
		routes[key] = true
		if ops[key] == nil {
			t.Errorf("route %s is not in openapi.json", key)
		}
	}
	for key := range ops {
		if !routes[key] {
			t.Errorf("openapi.json documents %s, which the router does not serve", key)
		}
	}
	if len(routes) < 11 {
		t.Fatalf("only %d routes: %v", len(routes), routes)
	}
}

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	d := loadOpenAPI(t)
	if d["openapi"] != "3.0.3" {
		t.Fatalf("openapi %v", d["openapi"])
	}
	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["$ref"]; ok {
				d.resolve(t, x)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(map[string]any(d))
	ids := map[string]bool{}
	paths := d["paths"].(map[string]any)
	for key, op := range d.operations() {
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] {
			t.Errorf("%s: operationId %q missing or repeated", key, id)
		}
		ids[id] = true
		resp, _ := op["responses"].(map[string]any)
		if resp["200"] == nil && resp["201"] == nil && resp["204"] == nil && resp["303"] == nil {
			t.Errorf("%s: no 200, 201, 204 or 303 response", key)
		}
		for code, r := range resp {
			if d.resolve(t, r)["description"] == nil {
				t.Errorf("%s %s: response without description", key, code)
			}
		}
		// Each {param} of the path is declared in the path.
		_, path, _ := strings.Cut(key, " ")
		declared := map[string]bool{}
		var params []any
		if ps, ok := paths[path].(map[string]any)["parameters"].([]any); ok {
			params = append(params, ps...)
		}
		if ps, ok := op["parameters"].([]any); ok {
			params = append(params, ps...)
		}
		for _, p := range params {
			pm := d.resolve(t, p)
			if pm["in"] == "path" {
				declared[pm["name"].(string)] = true
				if pm["required"] != true {
					t.Errorf("%s: path parameter %v not required", key, pm["name"])
				}
			}
		}
		for _, m := range regexp.MustCompile(`\{([A-Za-z]+)\}`).FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %s not declared", key, m[1])
			}
		}
		// Public routes say so; the others need a key and document the 401.
		if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
			if strings.HasPrefix(path, "/api/v1/tasks") {
				t.Errorf("%s is documented as public", key)
			}
		} else if resp["401"] == nil {
			t.Errorf("%s: no 401 response", key)
		}
	}
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(v any) []string {
	var names []string
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (d oaDoc) properties(t *testing.T, schema string) []string {
	t.Helper()
	s := d.resolve(t, map[string]any{"$ref": "#/components/schemas/" + schema})
	var names []string
	for k := range s["properties"].(map[string]any) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func sortedSet(m map[string]bool) []string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestOpenAPIMatchesTheCode keeps the document's schemas, parameters and
// codes equal to what the handlers use.
func TestOpenAPIMatchesTheCode(t *testing.T) {
	d := loadOpenAPI(t)
	for schema, view := range map[string]any{
		"Task": api.Task{}, "TaskSummary": api.TaskSummary{}, "TaskStatus": api.Status{}, "Logs": api.Logs{},
		"LogEntry": api.LogEntry{}, "CancelResult": api.Cancel{}, "CreateTaskRequest": api.CreateTask{},
		"Health": api.Health{}, "Ready": api.Ready{}, "StateVersion": api.StateVersion{}, "StateLock": api.StateLock{},
		"Runner": api.Runner{}, "EngineInfo": task.EngineInfo{},
		"Event": api.Event{}, "Webhook": api.Webhook{}, "NewWebhook": api.NewWebhook{}, "Delivery": api.Delivery{},
		"SigningSecret": api.SigningSecret{}, "StatusEvent": api.StatusEvent{}, "EndEvent": api.EndEvent{},
		"Plan": api.Plan{}, "ResourceChange": api.ResourceChange{}, "OutputChange": api.OutputChange{},
		"Decision": api.Decision{}, "PlanSummary": task.PlanSummary{},
		"Policy": api.Policy{}, "PolicyList": api.PolicyList{}, "PolicyVersions": api.PolicyVersions{},
		"PutPolicyRequest": api.PutPolicyRequest{}, "EvaluatePolicyRequest": api.EvaluatePolicyRequest{},
		"EvaluatePolicyResponse": api.EvaluatePolicyResponse{}, "PolicyProblem": api.PolicyProblem{},
		"PolicyCheck": task.PolicyCheck{}, "PolicyResult": task.PolicyResult{}, "PolicyRef": task.PolicyRef{},
		"CredentialSet": api.CredentialSet{}, "CredentialSetList": api.CredentialSetList{},
		"PutCredentialSetRequest": api.PutCredentialSetRequest{}, "CredentialOIDC": api.CredentialOIDC{},
	} {
		if got, want := d.properties(t, schema), jsonFields(view); !reflect.DeepEqual(got, want) {
			t.Errorf("schema %s has %v, the view %v", schema, got, want)
		}
	}
	errSchema := d.resolve(t, map[string]any{"$ref": "#/components/schemas/Error"})
	inner := errSchema["properties"].(map[string]any)["error"].(map[string]any)
	var props []string
	for k := range inner["properties"].(map[string]any) {
		props = append(props, k)
	}
	sort.Strings(props)
	if want := jsonFields(api.Error{}); !reflect.DeepEqual(props, want) {
		t.Errorf("Error has %v, want %v", props, want)
	}
	var codes []string
	for _, c := range inner["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any) {
		codes = append(codes, c.(string))
	}
	sort.Strings(codes)
	if want := sortedSet(mapKeys(errorCodes)); !reflect.DeepEqual(codes, want) {
		t.Errorf("error codes %v, want %v", codes, want)
	}
	if got, want := d.properties(t, "CreateTaskRequest"), sortedSet(topLevelFields); !reflect.DeepEqual(got, want) {
		t.Errorf("CreateTaskRequest %v, want %v", got, want)
	}
	if got, want := d.properties(t, "Parameters"), sortedSet(reservedParams); !reflect.DeepEqual(got, want) {
		t.Errorf("Parameters %v, want %v", got, want)
	}
	ops := d.operations()
	queryParams := func(key string) []string {
		var names []string
		for _, p := range ops[key]["parameters"].([]any) {
			if pm := d.resolve(t, p); pm["in"] == "query" {
				names = append(names, pm["name"].(string))
			}
		}
		sort.Strings(names)
		return names
	}
	for _, key := range []string{"GET /api/v1/tasks", "GET /api/v1/tasks/agent/{agentId}", "GET /api/v1/tasks/runner/{runnerId}"} {
		if got, want := queryParams(key), sortedSet(listParams); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: query parameters %v, want %v", key, got, want)
		}
	}
	if got, want := queryParams("GET /api/v1/tasks/{taskId}/logs"), sortedSet(logParams); !reflect.DeepEqual(got, want) {
		t.Errorf("logs query parameters %v, want %v", got, want)
	}
	if got, want := queryParams("GET /api/v1/events"), sortedSet(eventParams); !reflect.DeepEqual(got, want) {
		t.Errorf("events query parameters %v, want %v", got, want)
	}
	if got, want := queryParams("GET /api/v1/webhooks/{webhookId}/deliveries"), sortedSet(deliveryParams); !reflect.DeepEqual(got, want) {
		t.Errorf("deliveries query parameters %v, want %v", got, want)
	}
	if got := queryParams("PUT /api/v1/tasks/{taskId}/cancel"); !reflect.DeepEqual(got, []string{"force"}) {
		t.Errorf("cancel query parameters %v", got)
	}
	if got := queryParams("GET /api/v1/tasks/{taskId}/plan"); !reflect.DeepEqual(got, []string{"format"}) {
		t.Errorf("plan query parameters %v", got)
	}
	// Statuses and task error codes are the task package's.
	var statuses []string
	for _, s := range d.resolve(t, map[string]any{"$ref": "#/components/schemas/Status"})["enum"].([]any) {
		statuses = append(statuses, s.(string))
	}
	var want []string
	for _, s := range task.Statuses {
		want = append(want, string(s))
	}
	if !reflect.DeepEqual(statuses, want) {
		t.Errorf("Status enum %v, want %v", statuses, want)
	}
	var headers []string
	for _, p := range ops["POST /api/v1/tasks"]["parameters"].([]any) {
		if pm := d.resolve(t, p); pm["in"] == "header" {
			headers = append(headers, pm["name"].(string))
		}
	}
	if !reflect.DeepEqual(headers, []string{HeaderIdempotencyKey}) {
		t.Errorf("create headers %v", headers)
	}
}

func mapKeys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func TestOpenAPIServedWithoutKey(t *testing.T) {
	ts := newTestServer(t, false)
	w := ts.do(t, req{method: "GET", path: openAPIPath})
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !bytes.Equal(w.Body.Bytes(), openAPI) {
		t.Fatalf("%d %s", w.Code, w.Header())
	}
}
