package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// TestIdempotentCreate runs Idempotency-Key against the real server and
// Temporal: ten concurrent creates with one key and one body make one task
// and one workflow; the same key with another body is a 409; the key still
// answers the task after it ended.
func TestIdempotentCreate(t *testing.T) {
	t.Parallel()
	idemKey := fmt.Sprintf("e2e-order-%d", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]any{
		"name": "idempotent", "agent_id": "agent-idem", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "workspace"), "action": "plan", "size": 1},
	})
	const n = 10
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, body, "Idempotency-Key", idemKey)
		}()
	}
	close(start)
	wg.Wait()
	var id string
	replayed := 0
	for i, r := range replies {
		if r.code != http.StatusOK {
			t.Fatalf("create %d: %d %s", i, r.code, r.body)
		}
		got := r.object(t)["id"].(string)
		if id == "" {
			id = got
		}
		if got != id {
			t.Fatalf("create %d made task %s, another made %s", i, got, id)
		}
		if r.header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Errorf("%d of %d answers say replayed, want %d", replayed, n, n-1)
	}

	// One workflow execution with that ID, one task in the index.
	c := dialShared(t)
	ctx := waitCtx(t, time.Minute)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
		if err == nil && len(resp.Executions) > 0 {
			if len(resp.Executions) != 1 {
				t.Fatalf("%d workflow executions for %s", len(resp.Executions), id)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("workflow %s not visible: %v", id, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	r := shared.call(t, http.MethodGet, "/api/v1/tasks/agent/agent-idem?limit=1000", shared.key, nil)
	count := 0
	for _, m := range r.array(t) {
		if m["id"] == id {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("task %s listed %d times", id, count)
	}

	// The same key with another body: 409 naming the header.
	other, _ := json.Marshal(map[string]any{"name": "something else", "agent_id": "agent-idem", "runner_id": "local"})
	r = shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, other, "Idempotency-Key", idemKey)
	if code, _, details := r.errorOf(t); r.code != http.StatusConflict || code != "conflict" || details["header"] != "Idempotency-Key" {
		t.Fatalf("other body: %d %s", r.code, r.body)
	}

	// After the task ended, the key still answers it, and starts nothing.
	shared.waitStatus(t, id, 2*time.Minute, terminal)
	r = shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, body, "Idempotency-Key", idemKey)
	if r.code != http.StatusOK || r.object(t)["id"] != id || r.object(t)["status"] != "completed" {
		t.Fatalf("replay after the end: %d %s", r.code, r.body)
	}
	if st := shared.get(t, id); st.Status != "completed" {
		t.Fatalf("the task ran again? %+v", st)
	}

	// Another key is another task; a bad key is a 400 naming the header.
	r = shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, parkedBody("other key", "agent-idem"), "Idempotency-Key", idemKey+"-2")
	if r.code != http.StatusOK || r.object(t)["id"] == id {
		t.Fatalf("another key: %d %s", r.code, r.body)
	}
	shared.call(t, http.MethodPut, "/api/v1/tasks/"+r.object(t)["id"].(string)+"/cancel", shared.key, nil)
	r = shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, body, "Idempotency-Key", "caf\u00e9")
	if code, _, details := r.errorOf(t); r.code != 400 || code != "bad_request" || details["header"] != "Idempotency-Key" {
		t.Fatalf("bad key: %d %s", r.code, r.body)
	}
}
