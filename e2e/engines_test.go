package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// engine is one engine the core tests run on.
type engine string

const (
	engineTerraform engine = "terraform"
	engineOpenTofu  engine = "opentofu"
)

// forEachEngine runs body once per engine, in parallel subtests named after
// the engine. The opentofu case skips when OpenTofu could not be had (it
// fails instead under CI: see TestMain).
func forEachEngine(t *testing.T, body func(t *testing.T, e engine)) {
	for _, e := range []engine{engineTerraform, engineOpenTofu} {
		t.Run(string(e), func(t *testing.T) {
			t.Parallel()
			if e == engineOpenTofu && tofuPath == "" {
				t.Skipf("no OpenTofu: %v", tofuErr)
			}
			body(t, e)
		})
	}
}

// params adds the engine to a task's parameters (terraform is the
// default, so its tasks name none, as a client would).
func (e engine) params(p map[string]any) map[string]any {
	if p == nil {
		p = map[string]any{}
	}
	if e != engineTerraform {
		p["engine"] = string(e)
	}
	return p
}

// binary is the engine's command name, as failure messages name it.
func (e engine) binary() string {
	if e == engineOpenTofu {
		return "tofu"
	}
	return "terraform"
}

func TestRunnerReportsEngines(t *testing.T) {
	t.Parallel()
	type engineInfo struct {
		Engine   string   `json:"engine"`
		Versions []string `json:"versions"`
		Download bool     `json:"download"`
	}
	var r struct {
		Status  string       `json:"status"`
		Engines []engineInfo `json:"engines"`
		Hosts   []struct {
			Identity string       `json:"identity"`
			Engines  []engineInfo `json:"engines"`
		} `json:"hosts"`
	}
	// The host writes its row before it polls; Temporal lists it as a
	// poller once it did.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if code, _ := shared.request(t, http.MethodGet, "/api/v1/runners/local", nil, &r); code != 200 {
			t.Fatalf("runner local: %d", code)
		}
		if len(r.Hosts) > 0 || time.Now().After(deadline) {
			break
		}
	}
	got := map[string]engineInfo{}
	for _, e := range r.Engines {
		got[e.Engine] = e
	}
	tf := got["terraform"]
	if len(tf.Versions) == 0 || !tf.Download {
		t.Fatalf("terraform engine %+v in %+v", tf, r)
	}
	if tofuPath != "" {
		if tofu := got["opentofu"]; len(tofu.Versions) == 0 || tofu.Versions[0] != "1.6.3" || tofu.Download {
			t.Fatalf("opentofu engine %+v in %+v", tofu, r)
		}
	}
	if len(r.Hosts) == 0 || len(r.Hosts[0].Engines) != 2 {
		t.Fatalf("hosts %+v", r.Hosts)
	}
	var ghost struct {
		Engines []engineInfo `json:"engines"`
	}
	if code, _ := shared.request(t, http.MethodGet, "/api/v1/runners/ghost-engines", nil, &ghost); code != 200 || ghost.Engines == nil || len(ghost.Engines) != 0 {
		t.Fatalf("unserved runner: %d %+v", code, ghost)
	}
}

func TestEngineTheRunnerLacksFailsAtOnce(t *testing.T) {
	t.Parallel()
	if tofuPath == "" {
		t.Skipf("no OpenTofu: %v", tofuErr)
	}
	tk := shared.create(t, map[string]any{
		"name": "old tofu", "agent_id": "agent-e2e", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five"), "engine": "opentofu", "tofu_version": "1.5.0"},
	})
	seen := shared.waitStatus(t, tk.ID, time.Minute, terminal)
	if last := seen[len(seen)-1]; last.Status != "failed" {
		t.Fatalf("ended %+v", last)
	}
	got := shared.get(t, tk.ID)
	e := got.Result.Error
	if e == nil || e.Code != "engine_unavailable" || !strings.Contains(e.Message, "version 1.5.0") ||
		!strings.Contains(e.Message, tofuPath+" (--tofu-path "+tofuPath+") is 1.6.3") {
		t.Fatalf("error %+v", e)
	}
	// At once: the install step ran once, not retried.
	failures := 0
	for _, l := range shared.logs(t, tk.ID, "") {
		if l.Metadata["component"] == "runner" && strings.HasPrefix(l.Message, "step installing failed") {
			failures++
		}
	}
	if failures != 1 {
		t.Fatalf("the install step failed %d times, want once", failures)
	}
}
