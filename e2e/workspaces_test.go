package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// workspaceVictim is agent A's configuration: its secret ends up in its
// workspace's state in plain text, as Terraform keeps it.
const workspaceVictim = `variable "secret" {
  type      = string
  sensitive = true
}

resource "terraform_data" "kept" {
  input = var.secret
}

output "kept" {
  value     = terraform_data.kept.output
  sensitive = true
}
`

// TestWorkspaceTenancy starts its own `terratask dev` with keys of two
// agents of one org and attacks agent A's workspace with agent B's keys:
// running a task on it, scheduling one, reading and locking its state with
// an admin key (the header and terraform's basic auth), listing and reading
// the workspace. Every probe is a 404 and changes nothing; no task of B
// runs. Then an unbound operator grants the workspace to B, and B runs.
func TestWorkspaceTenancy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	const secret = "ws-secret-4c1f9a"
	ps := []principal{
		{"bot-a", "raw-ws-bot-a-1b7e", "default", "operator", "agent-a"},
		{"bot-a-admin", "raw-ws-bot-a-admin-2c8f", "default", "admin", "agent-a"},
		{"bot-b", "raw-ws-bot-b-3d9a", "default", "operator", "agent-b"},
		{"bot-b-admin", "raw-ws-bot-b-admin-4e0b", "default", "admin", "agent-b"},
		{"ops", "raw-ws-ops-5f1c", "default", "operator", ""},
		{"viewer", "raw-ws-viewer-6a2d", "default", "viewer", ""},
	}
	key := map[string]string{}
	for _, p := range ps {
		key[p.name] = p.raw
	}
	writeKeysFile(t, keysPath, ps)
	dev, err := startDev(filepath.Join(dir, "data"), "raw-ws-dev-admin-7b3e", "--api-keys-file", keysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	body := func(name, agent, ws, action string, secrets bool) []byte {
		params := map[string]any{"files": map[string]string{"main.tf": workspaceVictim}, "workspace": ws, "action": action}
		if secrets {
			params["sensitive_variables"] = map[string]any{"secret": secret}
		} else {
			params["secret"] = "b-was-here"
		}
		b, _ := json.Marshal(map[string]any{"name": name, "agent_id": agent, "runner_id": "local", "parameters": params})
		return b
	}
	run := func(who, name, agent, ws, action string, secrets bool) string {
		t.Helper()
		r := dev.call(t, http.MethodPost, "/api/v1/tasks", key[who], body(name, agent, ws, action, secrets))
		if r.code != 200 {
			t.Fatalf("%s creates %s: %d %s", who, name, r.code, r.body)
		}
		id := r.object(t)["id"].(string)
		seen := dev.waitStatus(t, id, 3*time.Minute, terminal)
		if last := seen[len(seen)-1]; last.Status != "completed" {
			t.Fatalf("%s ended %+v\n%v", name, last, dev.logs(t, id, "?level=error"))
		}
		return id
	}

	// Agent A applies on its workspace: it owns it; the secret is in the
	// workspace's state.
	first := run("bot-a", "a applies", "agent-a", "prod-a", "apply", true)
	stateA := dev.call(t, http.MethodGet, "/api/v1/state/default/prod-a", key["bot-a-admin"], nil)
	if stateA.code != 200 || !strings.Contains(string(stateA.body), secret) {
		t.Fatalf("agent A's admin reads its state: %d", stateA.code)
	}
	wsA := dev.call(t, http.MethodGet, "/api/v1/workspaces/prod-a", key["bot-a"], nil)
	if wsA.code != 200 {
		t.Fatalf("agent A reads its workspace: %d %s", wsA.code, wsA.body)
	}
	view := wsA.object(t)
	if fmt.Sprint(view["agents"]) != "[agent-a]" || view["created_by"] != "bot-a" || view["state_serial"] == nil ||
		view["latest_task"].(map[string]any)["id"] != first || view["latest_task"].(map[string]any)["status"] != "completed" || view["lock"] != nil {
		t.Fatalf("agent A's workspace: %s", wsA.body)
	}
	serial := fmt.Sprint(view["state_serial"])

	// Agent B, operator and admin key: every probe is a 404 naming the
	// workspace, and nothing runs.
	for _, who := range []string{"bot-b", "bot-b-admin"} {
		for _, action := range []string{"apply", "plan", "destroy"} {
			r := dev.call(t, http.MethodPost, "/api/v1/tasks", key[who], body("b on a's "+action, "agent-b", "prod-a", action, false))
			code, msg, details := r.errorOf(t)
			if r.code != 404 || code != "not_found" || details["workspace"] != "prod-a" || !strings.Contains(msg, "prod-a") {
				t.Fatalf("%s %s on agent A's workspace: %d %s", who, action, r.code, r.body)
			}
		}
	}
	sched, _ := json.Marshal(map[string]any{"name": "b's nightly", "cron": "@daily", "paused": true,
		"template": map[string]any{"name": "b scheduled", "agent_id": "agent-b", "runner_id": "local", "parameters": map[string]any{"workspace": "prod-a", "action": "destroy"}}})
	if r := dev.call(t, http.MethodPost, "/api/v1/schedules", key["bot-b"], sched); r.code != 404 {
		t.Fatalf("agent B schedules on agent A's workspace: %d %s", r.code, r.body)
	}
	base := "/api/v1/state/default/prod-a"
	for _, probe := range []struct {
		method, path string
		body         []byte
	}{
		{"GET", base, nil}, {"GET", base + "/versions/1", nil}, {"GET", base + "/versions", nil}, {"GET", base + "/lock", nil},
		{"POST", base + "/lock", []byte(`{"ID":"b-lock","Operation":"OperationTypeApply","Who":"b"}`)},
		{"POST", base, []byte(`{"version":4,"serial":99,"lineage":"b","outputs":{},"resources":[]}`)},
		{"DELETE", base + "/lock?force=true", nil},
	} {
		for _, who := range []string{"bot-b-admin", "bot-b"} {
			r := dev.call(t, probe.method, probe.path, key[who], probe.body)
			if code, _, details := r.errorOf(t); r.code != 404 || code != "not_found" || details["workspace"] != "prod-a" || strings.Contains(string(r.body), secret) {
				t.Fatalf("%s %s %s: %d %s", who, probe.method, probe.path, r.code, r.body)
			}
		}
	}
	// As terraform sends a key: the basic-auth password.
	req, _ := http.NewRequest(http.MethodGet, dev.api+base, nil)
	req.SetBasicAuth("terraform", key["bot-b-admin"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("agent B's admin key as terraform's basic auth: %d", resp.StatusCode)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/workspaces/prod-a", key["bot-b-admin"], nil); r.code != 404 {
		t.Fatalf("agent B reads agent A's workspace: %d %s", r.code, r.body)
	}
	listB := dev.call(t, http.MethodGet, "/api/v1/workspaces?limit=1000", key["bot-b"], nil)
	if listB.code != 200 || strings.Contains(string(listB.body), "prod-a") || strings.Contains(string(listB.body), first) {
		t.Fatalf("agent B lists agent A's workspace: %d %s", listB.code, listB.body)
	}
	for _, suffix := range []string{"", "/plan", "/logs"} {
		if r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+first+suffix, key["bot-b-admin"], nil); r.code != 404 {
			t.Fatalf("agent B reads agent A's task%s: %d", suffix, r.code)
		}
	}
	// Nothing changed, nothing of B's ran.
	var tasks []Task
	dev.request(t, http.MethodGet, "/api/v1/tasks?limit=1000", nil, &tasks)
	for _, tk := range tasks {
		if tk.AgentID == "agent-b" {
			t.Fatalf("a task of agent B exists: %+v", tk)
		}
	}
	after := dev.call(t, http.MethodGet, "/api/v1/workspaces/prod-a", key["ops"], nil).object(t)
	if fmt.Sprint(after["state_serial"]) != serial || after["lock"] != nil || after["latest_task"].(map[string]any)["id"] != first ||
		fmt.Sprint(after["agents"]) != "[agent-a]" {
		t.Fatalf("agent A's workspace after the probes: %v", after)
	}
	if r := dev.call(t, http.MethodGet, base, key["bot-a-admin"], nil); string(r.body) != string(stateA.body) {
		t.Fatal("agent A's state changed")
	}
	// Unbound keys see it; viewers and agent-bound keys may not grant.
	if l := dev.call(t, http.MethodGet, "/api/v1/workspaces", key["viewer"], nil); !strings.Contains(string(l.body), `"prod-a"`) {
		t.Fatalf("an unbound viewer's list: %s", l.body)
	}
	grant := []byte(`{"agents":["agent-a","agent-b"]}`)
	for _, who := range []string{"viewer", "bot-a", "bot-b-admin"} {
		if r := dev.call(t, http.MethodPut, "/api/v1/workspaces/prod-a", key[who], grant); r.code != 403 {
			t.Fatalf("%s grants: %d %s", who, r.code, r.body)
		}
	}

	// An unbound operator grants it to B: B runs, and reads the state.
	if r := dev.call(t, http.MethodPut, "/api/v1/workspaces/prod-a", key["ops"], grant); r.code != 200 {
		t.Fatalf("ops grants: %d %s", r.code, r.body)
	}
	second := run("bot-b", "b plans on a's", "agent-b", "prod-a", "plan", false)
	if r := dev.call(t, http.MethodGet, base, key["bot-b-admin"], nil); r.code != 200 || !strings.Contains(string(r.body), secret) {
		t.Fatalf("agent B's admin reads the granted state: %d", r.code)
	}
	if l := dev.call(t, http.MethodGet, "/api/v1/workspaces", key["bot-b"], nil); !strings.Contains(string(l.body), `"prod-a"`) || !strings.Contains(string(l.body), second) {
		t.Fatalf("agent B's list after the grant: %s", l.body)
	}
	// A's task stays A's.
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+first, key["bot-b"], nil); r.code != 404 {
		t.Fatalf("agent B reads agent A's task after the grant: %d", r.code)
	}
}

// TestWorkspaceFirstTaskRace: two agents create the first tasks of a new
// workspace at once, many times: one agent owns each workspace, every task
// of the other is a 404 and never started.
func TestWorkspaceFirstTaskRace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	ps := []principal{
		{"race-a", "raw-race-a-8c4f", "default", "operator", "agent-a"},
		{"race-b", "raw-race-b-9d5a", "default", "operator", "agent-b"},
	}
	writeKeysFile(t, keysPath, ps)
	dev, err := startDev(filepath.Join(dir, "data"), "raw-race-dev-admin-0e6b", "--api-keys-file", keysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	total := 0
	for round := range 5 {
		ws := fmt.Sprint("race-", round)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created = map[string][]string{}
			refused = map[string]int{}
		)
		for i := range 6 {
			p := ps[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := json.Marshal(map[string]any{"name": "race", "agent_id": p.agent, "runner_id": "nobody-serves-this",
					"parameters": map[string]any{"workspace": ws}})
				r := dev.call(t, http.MethodPost, "/api/v1/tasks", p.raw, b)
				mu.Lock()
				defer mu.Unlock()
				switch r.code {
				case 200:
					created[p.agent] = append(created[p.agent], r.object(t)["id"].(string))
				case 404:
					refused[p.agent]++
				default:
					t.Errorf("%s: %d %s", p.name, r.code, r.body)
				}
			}()
		}
		wg.Wait()
		if len(created) != 1 || len(refused) != 1 {
			t.Fatalf("%s: created %v, refused %v: want one agent's tasks only", ws, created, refused)
		}
		// The refused tasks were never started: the org has exactly the
		// created ones.
		for _, ids := range created {
			total += len(ids)
			for _, id := range ids {
				dev.call(t, http.MethodPut, "/api/v1/tasks/"+id+"/cancel", dev.key, nil)
			}
		}
		if _, h := dev.request(t, http.MethodGet, "/api/v1/tasks?limit=1", nil, nil); h.Get("X-Total-Count") != fmt.Sprint(total) {
			t.Fatalf("%s: the org has %s tasks, want %d", ws, h.Get("X-Total-Count"), total)
		}
	}
}
