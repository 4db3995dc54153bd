package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevRunsTheSeedExampleOnDemand starts dev as a newcomer does (no
// --runner): the seed's example names runner-789, dev starts a local runner
// for it, and the task completes. The banner says how to use the CLI.
func TestDevRunsTheSeedExampleOnDemand(t *testing.T) {
	t.Parallel()
	dev, err := startDevOnDemand(filepath.Join(t.TempDir(), "data"), "on-demand-key")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	// The seed's example to the letter: runner-789, which no process serves yet.
	body := strings.Replace(seedCreateBody, `"runner_id": "local"`, `"runner_id": "runner-789"`, 1)
	r := dev.call(t, http.MethodPost, "/api/v1/tasks", dev.key, []byte(body))
	if r.code != http.StatusOK {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	id := r.object(t)["id"].(string)
	seen := dev.waitStatus(t, id, 3*time.Minute, terminal)
	if last := seen[len(seen)-1]; last.Status != "completed" {
		t.Fatalf("the seed example on runner-789 ended %s\n%s", last.Status, dev.output.String())
	}
	tk := dev.get(t, id)
	if tk.RunnerID != "runner-789" || tk.Result == nil || tk.Result.Error != nil {
		t.Fatalf("task %+v", tk)
	}
	runner := dev.call(t, http.MethodGet, "/api/v1/runners/runner-789", dev.key, nil).object(t)
	if runner["status"] != "online" {
		t.Fatalf("runner-789: %v", runner)
	}
	banner := dev.output.String()
	for _, want := range []string{"any other runner ID", "terratask tasks create", "TERRATASK_ADDRESS=" + dev.api, "/mcp"} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, banner)
		}
	}
}
