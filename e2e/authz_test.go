package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/terratask/terratask/auth"
)

// principal is a key of the auth matrix.
type principal struct {
	name, raw, org, role, agent string
}

func (p principal) sees(tk matrixTask) bool {
	return p.org == tk.org && (p.agent == "" || p.agent == tk.agent)
}

// matrixTask is a task of the matrix, by org and agent.
type matrixTask struct {
	label, org, agent, creator string
	id                         string
}

func writeKeysFile(t *testing.T, path string, ps []principal) {
	t.Helper()
	var b strings.Builder
	b.WriteString("keys:\n")
	for _, p := range ps {
		fmt.Fprintf(&b, "  - name: %s\n    org: %s\n    role: %s\n    hash: %s\n", p.name, p.org, p.role, auth.HashKey(p.raw))
		if p.agent != "" {
			fmt.Fprintf(&b, "    agent: %s\n", p.agent)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestAuthMatrix starts its own `terratask dev` with a keys file of viewer,
// operator and admin keys in two orgs plus an agent-bound key, and checks
// every role against every route, for tasks of its own org, of the other
// org, and of its own and another agent. Then it reloads the keys file with
// SIGHUP, and checks no key ever reached the process's logs.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	ps := []principal{
		{"viewer-a", "raw-viewer-a-7d1f", "default", "viewer", ""},
		{"operator-a", "raw-operator-a-9c2e", "default", "operator", ""},
		{"admin-a", "raw-admin-a-4b8a", "default", "admin", ""},
		{"bot-x", "raw-bot-x-1e5d", "default", "operator", "agent-x"},
		{"viewer-b", "raw-viewer-b-3a7c", "other", "viewer", ""},
		{"operator-b", "raw-operator-b-6f0b", "other", "operator", ""},
		{"admin-b", "raw-admin-b-8d3e", "other", "admin", ""},
	}
	writeKeysFile(t, keysPath, ps)
	dev, err := startDev(filepath.Join(dir, "data"), "raw-dev-admin-5a9f", "--api-keys-file", keysPath, "--log-level", "info")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	byName := map[string]principal{}
	for _, p := range ps {
		byName[p.name] = p
	}
	// The dev admin key still works next to the file's keys.
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks", dev.key, nil); r.code != 200 {
		t.Fatalf("dev admin key: %d", r.code)
	}

	create := func(p principal, agent, name string) reply {
		return dev.call(t, http.MethodPost, "/api/v1/tasks", p.raw, parkedBody(name, agent))
	}
	mk := func(label, org, agent, creator string) matrixTask {
		r := create(byName[creator], agent, label)
		if r.code != 200 {
			t.Fatalf("creating %s: %d %s", label, r.code, r.body)
		}
		return matrixTask{label: label, org: org, agent: agent, creator: creator, id: r.object(t)["id"].(string)}
	}
	tasks := []matrixTask{
		mk("own org, agent-x", "default", "agent-x", "admin-a"),
		mk("own org, agent-y", "default", "agent-y", "admin-a"),
		mk("other org, agent-x", "other", "agent-x", "admin-b"),
	}

	for _, p := range ps {
		t.Run(p.name, func(t *testing.T) {
			// Create: viewers never; agent-bound keys for their agent only.
			for _, agent := range []string{"agent-x", "agent-y"} {
				r := create(p, agent, "by "+p.name)
				want := 200
				if p.role == "viewer" || (p.agent != "" && p.agent != agent) {
					want = 403
				}
				if r.code != want {
					t.Fatalf("create for %s: %d, want %d: %s", agent, r.code, want, r.body)
				}
				if want == 403 {
					if code, _, _ := r.errorOf(t); code != "forbidden" {
						t.Fatalf("create: %s", r.body)
					}
				} else {
					id := r.object(t)["id"].(string)
					dev.call(t, http.MethodPut, "/api/v1/tasks/"+id+"/cancel", dev.key, nil)
				}
			}
			for _, tk := range tasks {
				sees := p.sees(tk)
				// Reads: the task, or a 404 (never a 403) when the key may
				// not see it.
				for _, suffix := range []string{"", "/status", "/logs"} {
					r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+tk.id+suffix, p.raw, nil)
					want := 404
					if sees {
						want = 200
					}
					if r.code != want {
						t.Fatalf("GET %s (%s): %d, want %d: %s", suffix, tk.label, r.code, want, r.body)
					}
					if want == 404 {
						if code, _, details := r.errorOf(t); code != "not_found" || details["taskId"] != tk.id {
							t.Fatalf("GET %s (%s): %s", suffix, tk.label, r.body)
						}
					}
				}
				// Cancel, on a fresh copy of the task (a cancel ends it).
				fresh := mk(tk.label+" copy", tk.org, tk.agent, tk.creator)
				r := dev.call(t, http.MethodPut, "/api/v1/tasks/"+fresh.id+"/cancel?force=true", p.raw, nil)
				wantForce := map[bool]int{true: 409, false: 403}[p.role == "admin"] // force needs a plain cancel first
				if !sees {
					wantForce = 404
				}
				if r.code != wantForce {
					t.Fatalf("force cancel (%s): %d, want %d: %s", tk.label, r.code, wantForce, r.body)
				}
				r = dev.call(t, http.MethodPut, "/api/v1/tasks/"+fresh.id+"/cancel", p.raw, nil)
				want := map[bool]int{true: 403, false: 200}[p.role == "viewer"]
				if !sees {
					want = 404
				}
				if r.code != want {
					t.Fatalf("cancel (%s): %d, want %d: %s", tk.label, r.code, want, r.body)
				}
				if want == 200 {
					if c := r.object(t); c["cancelled_by"] != p.name {
						t.Fatalf("cancelled_by %v, want %s", c["cancelled_by"], p.name)
					}
				} else {
					dev.call(t, http.MethodPut, "/api/v1/tasks/"+fresh.id+"/cancel", byName[fresh.creator].raw, nil)
				}
			}
			// Lists show exactly the matrix tasks the key may see.
			for _, path := range []string{"/api/v1/tasks?limit=1000", "/api/v1/tasks/runner/nobody-serves-this?limit=1000",
				"/api/v1/tasks/agent/agent-x?limit=1000", "/api/v1/tasks/agent/agent-y?limit=1000"} {
				r := dev.call(t, http.MethodGet, path, p.raw, nil)
				if r.code != 200 {
					t.Fatalf("%s: %d %s", path, r.code, r.body)
				}
				listed := map[string]bool{}
				for _, m := range r.array(t) {
					listed[m["id"].(string)] = true
				}
				for _, tk := range tasks {
					inPath := !strings.Contains(path, "/agent/") || strings.Contains(path, "/agent/"+tk.agent+"?")
					if want := p.sees(tk) && inPath; listed[tk.id] != want {
						t.Fatalf("%s: %s listed=%v, want %v", path, tk.label, listed[tk.id], want)
					}
				}
			}
		})
	}

	// Missing and unknown keys are 401 on every route.
	for _, route := range [][2]string{{"GET", "/api/v1/tasks"}, {"POST", "/api/v1/tasks"}, {"GET", "/api/v1/tasks/" + tasks[0].id},
		{"GET", "/api/v1/tasks/" + tasks[0].id + "/status"}, {"GET", "/api/v1/tasks/" + tasks[0].id + "/logs"},
		{"PUT", "/api/v1/tasks/" + tasks[0].id + "/cancel"}, {"GET", "/api/v1/tasks/agent/agent-x"}, {"GET", "/api/v1/tasks/runner/local"}} {
		for _, key := range []string{"", "raw-unknown-key"} {
			r := dev.call(t, route[0], route[1], key, nil)
			if code, _, _ := r.errorOf(t); r.code != 401 || code != "unauthorized" {
				t.Fatalf("%s %s with key %q: %d %s", route[0], route[1], key, r.code, r.body)
			}
		}
	}

	// SIGHUP reloads the keys file: viewer-a out, a new key in.
	ps2 := append([]principal{{"late-viewer", "raw-late-viewer-2c4d", "default", "viewer", ""}}, ps[1:]...)
	writeKeysFile(t, keysPath, ps2)
	if err := dev.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for dev.call(t, http.MethodGet, "/api/v1/tasks", "raw-late-viewer-2c4d", nil).code != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the reloaded key does not work\n%s", dev.output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks", ps[0].raw, nil); r.code != 401 {
		t.Fatalf("removed key: %d", r.code)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks", dev.key, nil); r.code != 200 {
		t.Fatalf("dev admin key after reload: %d", r.code)
	}

	// No key ever reached the logs; the banner alone shows the dev key.
	out := dev.output.String()
	if !strings.Contains(out, `"http request"`) {
		t.Fatalf("no access log at --log-level info:\n%s", out)
	}
	for _, p := range append(ps, ps2[0], principal{raw: "raw-unknown-key"}) {
		if strings.Contains(out, p.raw) {
			t.Fatalf("key %s appears in the process output", p.name)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, dev.key) && !strings.Contains(line, "Admin key:") && !strings.Contains(line, "export TERRATASK_API_KEY=") {
			t.Fatalf("the dev key outside the banner: %s", line)
		}
	}
}
