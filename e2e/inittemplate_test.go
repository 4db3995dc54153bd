package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInitReuseKeepsWorkspacesApart: on the server's state backend one
// initialised working directory serves every workspace of a configuration
// (its backend block is the same for all; the address comes from TF_HTTP_*),
// so a second workspace's task runs no terraform init. State never crosses:
// each workspace plans against its own state, and the server keeps each
// workspace's values apart.
func TestInitReuseKeepsWorkspacesApart(t *testing.T) {
	t.Parallel()
	dev := shared
	mark := fmt.Sprintf("%d", time.Now().UnixNano())
	files := map[string]string{"main.tf": `# template test ` + mark + `
variable "value" {
  type = string
}

resource "terraform_data" "x" {
  input = var.value
}

output "value" {
  value = terraform_data.x.output
}
`}
	wsA, wsB := "tmpl-a-"+mark, "tmpl-b-"+mark
	run := func(ws, value string) (Task, string) {
		t.Helper()
		tk := dev.create(t, map[string]any{"name": "template " + ws, "agent_id": "agent-template", "runner_id": "local",
			"parameters": map[string]any{"files": files, "workspace": ws, "value": value}})
		waitEnd(t, dev, tk.ID)
		got := dev.get(t, tk.ID)
		logs := logText(t, dev, tk.ID)
		if got.Status != "completed" || got.Result == nil || got.Result.Output["value"] != value {
			t.Fatalf("task on %s: %+v\n%s", ws, got, logs)
		}
		return got, logs
	}
	planAdds := func(id string) float64 {
		t.Helper()
		r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+id+"/plan", dev.key, nil)
		if r.code != 200 {
			t.Fatalf("plan of %s: %d %s", id, r.code, r.body)
		}
		n, err := strconv.ParseFloat(fmt.Sprint(r.object(t)["summary"].(map[string]any)["add"]), 64)
		if err != nil {
			t.Fatalf("plan of %s: %s", id, r.body)
		}
		return n
	}

	a1, logs := run(wsA, "value-a")
	if strings.Contains(logs, "terraform init was not needed") {
		t.Fatalf("the first task of a new configuration reused a directory:\n%s", logs)
	}
	b1, logs := run(wsB, "value-b")
	if !strings.Contains(logs, "terraform init was not needed") {
		t.Errorf("the second workspace of the configuration ran terraform init:\n%s", logs)
	}
	if planAdds(a1.ID) != 1 || planAdds(b1.ID) != 1 {
		t.Fatalf("each workspace's first plan creates its resource")
	}
	// Workspace A again: it sees its own state (nothing to add), not B's.
	a2, logs := run(wsA, "value-a")
	if !strings.Contains(logs, "terraform init was not needed") || planAdds(a2.ID) != 0 {
		t.Fatalf("the second task of workspace A: plan adds %v\n%s", planAdds(a2.ID), logs)
	}
	for ws, want := range map[string][2]string{wsA: {"value-a", "value-b"}, wsB: {"value-b", "value-a"}} {
		r := dev.call(t, http.MethodGet, "/api/v1/state/default/"+ws, dev.key, nil)
		if r.code != 200 || !strings.Contains(string(r.body), want[0]) || strings.Contains(string(r.body), want[1]) {
			t.Fatalf("state of %s: %d %s", ws, r.code, r.body)
		}
	}
}
