package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/terratask/terratask/secret"
)

// TestRecordHistories records the histories the replay test of package
// workflows replays (workflows/testdata). It runs only when
// TERRATASK_RECORD_HISTORIES names a directory: it runs each scenario on a
// `terratask dev` whose secret key is the replay test's
// (workflows/testdata/replay-secret.key), so the payloads are encrypted as in
// production, and writes each task's history as <dir>/<prefix><scenario>.json
// (what `temporal workflow show --output json` prints). The prefix is
// TERRATASK_RECORD_PREFIX, default "v1-encrypted-".
func TestRecordHistories(t *testing.T) {
	out := os.Getenv("TERRATASK_RECORD_HISTORIES")
	if out == "" {
		t.Skip("set TERRATASK_RECORD_HISTORIES=<dir> to record workflow histories")
	}
	prefix := os.Getenv("TERRATASK_RECORD_PREFIX")
	if prefix == "" {
		prefix = "v1-encrypted-"
	}
	keys, err := secret.ReadKeysFile("../workflows/testdata/replay-secret.key")
	if err != nil || len(keys) != 1 {
		t.Fatalf("replay key: %v", err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "secret.key"), []byte(base64.StdEncoding.EncodeToString(keys[0])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := startDev(dataDir, "record-key")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	scenarios := map[string]string{}
	run := func(name string, body map[string]any) string {
		tk := dev.create(t, body)
		scenarios[name] = tk.ID
		return tk.ID
	}
	run("completed", map[string]any{"name": "record completed", "agent_id": "agent-record", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "echo"), "word": "recorded",
			"sensitive_variables": map[string]any{"token": "recorded-secret"}}})
	run("plan", map[string]any{"name": "record plan", "agent_id": "agent-record", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "workspace"), "action": "plan"}})
	run("failed", map[string]any{"name": "record failed", "agent_id": "agent-record", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "broken")}})
	cancelled := run("cancelled", map[string]any{"name": "record cancelled", "agent_id": "agent-record", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 2}})
	dev.waitStatus(t, cancelled, 2*time.Minute, func(s Status) bool {
		return s.Metadata.CurrentStep == "applying" && s.Metadata.ChangesDone >= 1 || terminal(s)
	})
	if code, _ := dev.request(t, http.MethodPut, "/api/v1/tasks/"+cancelled+"/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	for _, id := range scenarios {
		dev.waitStatus(t, id, 3*time.Minute, terminal)
	}
	c, err := client.Dial(client.Options{HostPort: dev.temporal, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, id := range scenarios {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// The workflow's last transitions (cleanup) follow the terminal
		// status: wait for the execution to close.
		var h historypb.History
		for {
			h.Events = h.Events[:0]
			it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				h.Events = append(h.Events, e)
			}
			if last := h.Events[len(h.Events)-1]; last.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED ||
				last.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED || last.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s (%s) did not close", name, id)
			}
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(out, prefix+name+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s, %d events", path, id, len(h.Events))
	}
}
