package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

var mcpTools = []string{"cancel_task", "check_policies", "create_task", "get_task", "get_task_logs", "get_task_plan", "get_task_status", "list_runners", "list_tasks", "wait_for_task"}

// stdioSession starts `terratask mcp` with key and connects the go-sdk's
// own client to it.
func stdioSession(t *testing.T, ctx context.Context, key string) *mcpsdk.ClientSession {
	t.Helper()
	cmd := exec.Command(binPath, "mcp")
	cmd.Env = cliEnv(key)
	s, err := mcpsdk.NewClient(&mcpsdk.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, &mcpsdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connecting to terratask mcp: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// keyTransport adds an Authorization header, as an agent's MCP client
// configured with headers does.
type keyTransport struct{ key string }

func (k keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return http.DefaultTransport.RoundTrip(r)
}

// httpSession connects to /mcp on the API server with key.
func httpSession(t *testing.T, ctx context.Context, key string) *mcpsdk.ClientSession {
	t.Helper()
	tr := &mcpsdk.StreamableClientTransport{Endpoint: shared.api + "/mcp", HTTPClient: &http.Client{Transport: keyTransport{key}}}
	s, err := mcpsdk.NewClient(&mcpsdk.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connecting to /mcp: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// call calls a tool; the result is a tool result (IsError for API errors),
// never a protocol error.
func call(t *testing.T, ctx context.Context, s *mcpsdk.ClientSession, name string, args map[string]any) (map[string]any, string, bool) {
	t.Helper()
	res, err := s.CallTool(ctx, &mcpsdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	text := ""
	for _, c := range res.Content {
		if tc, ok := c.(*mcpsdk.TextContent); ok {
			text += tc.Text
		}
	}
	var out map[string]any
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &out)
	}
	return out, text, res.IsError
}

func TestMCPOverStdio(t *testing.T) {
	t.Parallel()
	ctx := waitCtx(t, 5*time.Minute)
	exerciseMCP(t, ctx, stdioSession(t, ctx, shared.key), stdioSession(t, ctx, viewerKey), "stdio")
}

func TestMCPOverHTTP(t *testing.T) {
	t.Parallel()
	ctx := waitCtx(t, 5*time.Minute)
	exerciseMCP(t, ctx, httpSession(t, ctx, shared.key), httpSession(t, ctx, viewerKey), "http")
	// The endpoint is behind the API's key check.
	r := shared.call(t, http.MethodPost, "/mcp", "", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if code, _, _ := r.errorOf(t); r.code != http.StatusUnauthorized || code != "unauthorized" {
		t.Fatalf("no key: %d %s", r.code, r.body)
	}
}

func exerciseMCP(t *testing.T, ctx context.Context, s, viewer *mcpsdk.ClientSession, via string) {
	tools, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("%s: no description or schema", tool.Name)
		}
		if tool.Name == "create_task" && !strings.Contains(tool.Description, "never approve") {
			t.Errorf("create_task does not say an agent never approves: %s", tool.Description)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(mcpTools, ",") {
		t.Fatalf("tools %v, want %v", names, mcpTools)
	}

	// Create, wait until done, read logs.
	created, text, isErr := call(t, ctx, s, "create_task", map[string]any{"name": "mcp " + via, "agent_id": "agent-mcp", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five")}})
	id, _ := created["id"].(string)
	if isErr || !strings.HasPrefix(id, "task-") {
		t.Fatalf("create_task: %s", text)
	}
	var waited map[string]any
	for i := 0; ; i++ {
		waited, text, isErr = call(t, ctx, s, "wait_for_task", map[string]any{"task_id": id, "timeout_seconds": 30})
		if isErr {
			t.Fatalf("wait_for_task: %s", text)
		}
		if waited["done"] == true {
			break
		}
		if waited["timed_out"] != true || i > 8 {
			t.Fatalf("wait_for_task: %s", text)
		}
	}
	if waited["status"] != "completed" || waited["progress"] != 100.0 {
		t.Fatalf("wait_for_task: %s", text)
	}
	logs, text, isErr := call(t, ctx, s, "get_task_logs", map[string]any{"task_id": id, "tail": 3})
	if entries, _ := logs["logs"].([]any); isErr || len(entries) != 3 || logs["truncated"] != true {
		t.Fatalf("get_task_logs: %s", text)
	}
	if st, text, isErr := call(t, ctx, s, "get_task_status", map[string]any{"task_id": id}); isErr || st["status"] != "completed" {
		t.Fatalf("get_task_status: %s", text)
	}
	if tk, text, isErr := call(t, ctx, s, "get_task", map[string]any{"task_id": id}); isErr || tk["result"] == nil {
		t.Fatalf("get_task: %s", text)
	}
	if l, text, isErr := call(t, ctx, s, "list_tasks", map[string]any{"agent": "agent-mcp", "limit": 50}); isErr || l["total"].(float64) < 1 {
		t.Fatalf("list_tasks: %s", text)
	}
	if r, text, isErr := call(t, ctx, s, "list_runners", nil); isErr || len(r["runners"].([]any)) == 0 {
		t.Fatalf("list_runners: %s", text)
	}
	// A dry run of the org's policies: this dev's org has none, so any
	// task is allowed and no policy is named.
	if r, text, isErr := call(t, ctx, s, "check_policies", map[string]any{"task": map[string]any{"name": "mcp dry run", "agent_id": "agent-mcp", "runner_id": "local"}}); isErr ||
		r["decision"] != "allow" || r["stage"] != "pre_plan" || len(r["policies"].([]any)) != 0 {
		t.Fatalf("check_policies: %s", text)
	}

	// Cancel a live task.
	parked, text, isErr := call(t, ctx, s, "create_task", map[string]any{"name": "mcp parked", "agent_id": "agent-mcp", "runner_id": "nobody-serves-this"})
	if isErr {
		t.Fatalf("create_task: %s", text)
	}
	if c, text, isErr := call(t, ctx, s, "cancel_task", map[string]any{"task_id": parked["id"]}); isErr || (c["status"] != "cancelled" && c["status"] != "cancelling") {
		t.Fatalf("cancel_task: %s", text)
	}

	// API errors are tool errors with the API's message, and the session
	// goes on.
	if _, text, isErr := call(t, ctx, s, "get_task", map[string]any{"task_id": "task-doesnotexist"}); !isErr || !strings.Contains(text, "not_found") {
		t.Fatalf("unknown task: error %v, %s", isErr, text)
	}
	if _, text, isErr := call(t, ctx, s, "cancel_task", map[string]any{"task_id": id}); !isErr || !strings.Contains(text, "conflict") {
		t.Fatalf("cancel of an ended task: error %v, %s", isErr, text)
	}
	if _, text, isErr := call(t, ctx, viewer, "create_task", map[string]any{"name": "viewer", "agent_id": "agent-mcp", "runner_id": "local"}); !isErr || !strings.Contains(text, "forbidden") {
		t.Fatalf("a viewer created a task: error %v, %s", isErr, text)
	}
	if _, text, isErr := call(t, ctx, viewer, "get_task", map[string]any{"task_id": id}); isErr {
		t.Fatalf("a viewer cannot read: %s", text)
	}
	if _, text, isErr := call(t, ctx, s, "list_runners", nil); isErr {
		t.Fatalf("the session did not go on: %s", text)
	}
}
