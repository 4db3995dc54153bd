package fleet

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApprovedPlanOutlivesItsHost: a task plans on one runner host and
// waits for approval; that host is SIGKILLed while it waits; the approval
// then applies the very plan it approved on the other host of the runner,
// which reads it, sealed, from the store (PostgreSQL here). Nothing is
// planned again.
func TestApprovedPlanOutlivesItsHost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal cluster node, PostgreSQL and four processes; skipped with -short")
	}
	f := startFleet(t, 1)
	api := f.replicas[0]
	runners := map[string]*proc{}
	for i := range 2 {
		p := startProc(t, fmt.Sprintf("runner-%d", i+1), filepath.Join(f.dir, fmt.Sprintf("runner-%d.log", i+1)), f.env, f.bin,
			"runner", "--org", "default", "--id", runnerID, "--temporal-address", f.temporal.address, "--store", f.storeDSN,
			"--secret-key-file", f.orgKeyPath, "--data-dir", filepath.Join(f.dir, fmt.Sprintf("runner-%d", i+1)),
			"--state-url", api.base, "--log-level", "info")
		host, _ := waitLogLine(t, p, "terratask runner ready", 2*time.Minute)["host"].(string)
		runners[host] = p
	}
	failf := func(format string, args ...any) {
		t.Helper()
		var b strings.Builder
		for _, p := range append([]*proc{f.temporal.proc, api.proc}, mapValues(runners)...) {
			b.WriteString(p.tail() + "\n")
		}
		t.Fatalf(format+"\n%s", append(args, b.String())...)
	}

	tk, err := api.create(map[string]any{"name": "approve-elsewhere", "agent_id": "agent-fleet", "runner_id": runnerID,
		"parameters": map[string]any{"files": fixture(t, "fleet"), "sleep_seconds": 0, "approval": "required"}})
	if err != nil {
		failf("create: %v", err)
	}
	var planner string
	deadline := time.Now().Add(3 * time.Minute)
	for planner == "" {
		st, err := api.status(tk.ID)
		if err != nil {
			failf("status: %v", err)
		}
		switch {
		case st.Status == "waiting_approval":
			planner = st.Metadata.Host
		case st.Status != "pending" && st.Status != "running", time.Now().After(deadline):
			failf("task did not wait for approval: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if runners[planner] == nil {
		failf("planned on unknown host %q", planner)
	}
	runners[planner].kill()
	t.Logf("killed host %s, which planned, while the task waits", planner)

	code, _, err := api.do("PUT", "/api/v1/tasks/"+tk.ID+"/approve", map[string]any{"comment": "apply it elsewhere"}, nil)
	if err != nil || code != 200 {
		failf("approve: %d %v", code, err)
	}
	st := waitTerminal(t, api, tk.ID, 4*time.Minute, failf)
	got, err := api.get(tk.ID)
	if err != nil || st.Status != "completed" || got.Result == nil || fmt.Sprint(got.Result.Output["steps"]) != "3" {
		failf("after approval: %+v %+v %v", st, got, err)
	}
	logs, err := api.logs(tk.ID)
	if err != nil {
		failf("logs: %v", err)
	}
	text := messages(logs)
	if !strings.Contains(text, ", read from the store") || strings.Contains(text, "planning again") ||
		strings.Count(text, "step planning started") != 1 || !strings.Contains(text, "restarting on another host") {
		failf("the approved plan was not applied from the store on the other host:\n%s", text)
	}
	if last := lastHost(logs); last == planner || runners[last] == nil {
		failf("applied on host %q (planner %s)", last, planner)
	}
}

// lastHost is the host of the last "picked up by" log line.
func lastHost(logs []LogEntry) string {
	host := ""
	for _, l := range logs {
		if rest, ok := strings.CutPrefix(l.Message, "picked up by runner "+runnerID+" on host "); ok {
			host = rest
		}
	}
	return host
}

func mapValues(m map[string]*proc) []*proc {
	var out []*proc
	for _, p := range m {
		out = append(out, p)
	}
	return out
}
