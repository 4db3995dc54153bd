package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/server"
)

// documentedOperations lists "METHOD /path/{param}" of the API's OpenAPI
// document (the one the server embeds and serves).
func documentedOperations(t *testing.T) map[string]bool {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(server.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			if method != "parameters" {
				ops[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	if len(ops) < 10 {
		t.Fatalf("only %d documented operations", len(ops))
	}
	return ops
}

// recorder answers every request with an empty JSON value and records it.
type recorder struct {
	mu   sync.Mutex
	seen []string // "METHOD /escaped/path"
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.seen = append(rec.seen, r.Method+" "+r.URL.EscapedPath())
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/runners") || strings.HasSuffix(r.URL.Path, "/tasks") && r.Method == http.MethodGet ||
		strings.Contains(r.URL.Path, "/tasks/agent/") || strings.Contains(r.URL.Path, "/tasks/runner/") ||
		strings.HasSuffix(r.URL.Path, "/versions") && !strings.Contains(r.URL.Path, "/policies/") ||
		strings.HasSuffix(r.URL.Path, "/events") || strings.HasSuffix(r.URL.Path, "/webhooks") && r.Method == http.MethodGet ||
		strings.HasSuffix(r.URL.Path, "/deliveries") || strings.HasSuffix(r.URL.Path, "/schedules") && r.Method == http.MethodGet ||
		strings.HasSuffix(r.URL.Path, "/workspaces") {
		_, _ = w.Write([]byte(`[]`))
		return
	}
	_, _ = w.Write([]byte(`{}`))
}

// undocumentedYet are client methods of routes that other work adds to the
// API; they join the document when it lands.
var undocumentedYet = map[string]bool{}

// TestEveryDocumentedRouteHasAMethod calls every method of the client
// against a recorder and checks that each documented operation was called
// by one of them, and that no method calls an undocumented route.
func TestEveryDocumentedRouteHasAMethod(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, err := client.New(srv.URL, client.WithAPIKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lock := json.RawMessage(`{"ID":"l1"}`)
	calls := []func() error{
		func() error {
			_, err := c.CreateTask(ctx, api.CreateTask{Name: "n", AgentID: "a", RunnerID: "r"})
			return err
		},
		func() error { _, err := c.ListTasks(ctx, client.ListOptions{}); return err },
		func() error { _, err := c.ListAgentTasks(ctx, "agent-1", client.ListOptions{}); return err },
		func() error { _, err := c.ListRunnerTasks(ctx, "runner-1", client.ListOptions{}); return err },
		func() error { _, err := c.GetTask(ctx, "task-1"); return err },
		func() error { _, err := c.GetStatus(ctx, "task-1"); return err },
		func() error { _, err := c.GetLogs(ctx, "task-1", client.LogOptions{}); return err },
		func() error { _, err := c.CancelTask(ctx, "task-1", client.CancelOptions{}); return err },
		func() error { _, err := c.GetPlan(ctx, "task-1"); return err },
		func() error { _, err := c.ApproveTask(ctx, "task-1", "ok"); return err },
		func() error { _, err := c.RejectTask(ctx, "task-1", "no"); return err },
		func() error { _, err := c.ListRunners(ctx); return err },
		func() error { _, err := c.GetRunner(ctx, "runner-1"); return err },
		func() error { _, err := c.Health(ctx); return err },
		func() error { _, err := c.Ready(ctx); return err },
		func() error { _, err := c.OpenAPI(ctx); return err },
		func() error { _, err := c.GetState(ctx, "org", "ws"); return err },
		func() error { _, err := c.PutState(ctx, "org", "ws", []byte(`{}`), "l1"); return err },
		func() error { _, err := c.GetStateLock(ctx, "org", "ws"); return err },
		func() error { return c.LockState(ctx, "org", "ws", lock) },
		func() error { _, err := c.UnlockState(ctx, "org", "ws", lock); return err },
		func() error { _, err := c.ListStateVersions(ctx, "org", "ws", 0, 0); return err },
		func() error { _, err := c.GetStateVersion(ctx, "org", "ws", 1); return err },
		func() error { _, err := c.Metrics(ctx); return err },
		func() error { _, err := c.DecodePayloads(ctx, nil); return err },
		func() error { _, err := c.EncodePayloads(ctx, nil); return err },
		func() error { _, err := c.ListEvents(ctx, client.EventOptions{}); return err },
		func() error { _, err := c.CreateWebhook(ctx, api.NewWebhook{URL: "https://x/"}); return err },
		func() error { _, err := c.ListWebhooks(ctx); return err },
		func() error { _, err := c.GetWebhook(ctx, "wh-1"); return err },
		func() error { _, err := c.DeleteWebhook(ctx, "wh-1"); return err },
		func() error { _, err := c.ListDeliveries(ctx, "wh-1", client.DeliveryOptions{}); return err },
		func() error { _, err := c.SigningSecret(ctx); return err },
		func() error { _, err := c.ListSchedules(ctx, client.ScheduleListOptions{Kind: "drift"}); return err },
		func() error {
			_, err := c.CreateSchedule(ctx, api.NewSchedule{Name: "n", Cron: "@daily", Template: api.CreateTask{Name: "n", AgentID: "a", RunnerID: "r"}})
			return err
		},
		func() error { _, err := c.GetSchedule(ctx, "sched-1"); return err },
		func() error {
			paused := true
			_, err := c.UpdateSchedule(ctx, "sched-1", api.SchedulePatch{Paused: &paused})
			return err
		},
		func() error { _, err := c.DeleteSchedule(ctx, "sched-1"); return err },
		func() error { _, err := c.TriggerSchedule(ctx, "sched-1"); return err },
		func() error { _, err := c.ListWorkspaces(ctx, 10, 2); return err },
		func() error { _, err := c.GetWorkspace(ctx, "prod"); return err },
		func() error { _, err := c.SetWorkspaceAgents(ctx, "prod", []string{"agent-1"}); return err },
		func() error { _, err := c.ListPolicies(ctx); return err },
		func() error { _, err := c.GetPolicy(ctx, "aws.tags", 2); return err },
		func() error { _, err := c.PolicyVersions(ctx, "aws.tags"); return err },
		func() error { _, _, err := c.PutPolicy(ctx, "aws.tags", "package aws.tags", ""); return err },
		func() error { return c.DeletePolicy(ctx, "aws.tags") },
		func() error {
			_, err := c.EvaluatePolicies(ctx, api.EvaluatePolicyRequest{Stage: "pre_plan", Task: json.RawMessage(`{"name":"n"}`)})
			return err
		},
		func() error { _, err := c.ListCredentialSets(ctx); return err },
		func() error { _, err := c.GetCredentialSet(ctx, "aws-prod"); return err },
		func() error {
			_, _, err := c.PutCredentialSet(ctx, "aws-prod", api.PutCredentialSetRequest{Env: map[string]string{"A": "b"}})
			return err
		},
		func() error { return c.DeleteCredentialSet(ctx, "aws-prod") },
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	docs := documentedOperations(t)
	matched := map[string]bool{}
	for _, seen := range rec.seen {
		found := ""
		for op := range docs {
			// A static path (/webhooks/signing-secret) wins over a
			// parameter one (/webhooks/{webhookId}) that matches too.
			if opPattern(op).MatchString(seen) && (found == "" || !strings.Contains(op, "{")) {
				found = op
			}
		}
		for op := range undocumentedYet {
			if found == "" && opPattern(op).MatchString(seen) {
				found = op
			}
		}
		if found == "" {
			t.Errorf("the client calls %s, which the document does not describe", seen)
		}
		matched[found] = true
	}
	var missing []string
	for op := range docs {
		// The runner API is the runner hosts' (internal/runnerapi's client).
		// dev's UI codec session is the browser's. The OIDC issuer's
		// documents are the cloud providers' (relying parties read them).
		if !matched[op] && !strings.Contains(op, " /api/v1/runner/") && op != "GET /api/v1/codec/session" &&
			!strings.Contains(op, " /.well-known/") {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	for _, op := range missing {
		t.Errorf("documented operation %s has no client method (add one, and its call to this test)", op)
	}
}

// opPattern matches the requests of "METHOD /path/{param}".
func opPattern(op string) *regexp.Regexp {
	parts := regexp.MustCompile(`\{[A-Za-z]+\}`).Split(op, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, `[^/]+`) + "$")
}
