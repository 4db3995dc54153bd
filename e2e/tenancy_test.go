package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/internal/testbin"
	"github.com/terratask/terratask/secret"
)

// The tenancy suite (issue 20, "Done when"), on dev: the probes of the
// issue, played as an attacker would with one key per role in two orgs,
// each asserting what must now hold (DESIGN.md, "Trust model"). Org A is
// org default (dev's own, whose runner local is dev's), org B is org-b.
// The same probes on the PostgreSQL fleet: fleet/tenancy_test.go.

// Keys of the tenancy suite's devs.
const (
	tenancyAdminA = "raw-tenancy-admin-a-6e1b"
	tenancyAdminB = "raw-tenancy-admin-b-2f7c"
	tenancyBotB   = "raw-tenancy-bot-b-9a4d"   // org B's operator, bound to agent-b
	tenancyBot1   = "raw-tenancy-bot-1-3c5e"   // org A's operator, bound to agent-1
	tenancyBot2   = "raw-tenancy-bot-2-7d9f"   // org A's operator, bound to agent-2
	tenancyAdmin2 = "raw-tenancy-admin-2-0e4a" // org A's admin, bound to agent-2
	tenancyDevKey = "raw-tenancy-dev-admin-51d0"
	tenancyOrgB   = "org-b"
)

var tenancyKeys = []principal{
	{"admin-a", tenancyAdminA, "default", "admin", ""},
	{"admin-b", tenancyAdminB, tenancyOrgB, "admin", ""},
	{"bot-b", tenancyBotB, tenancyOrgB, "operator", "agent-b"},
	{"bot-1", tenancyBot1, "default", "operator", "agent-1"},
	{"bot-2", tenancyBot2, "default", "operator", "agent-2"},
	{"admin-2", tenancyAdmin2, "default", "admin", "agent-2"},
}

// tenancyTinyFiles is a configuration that runs no resource: a task that
// only needs a runner to pick it up.
var tenancyTinyFiles = map[string]string{"main.tf": `output "ok" { value = "ok" }`}

// startTenancyDev starts a dev of the suite's own with its keys, logging
// at info (the on-demand runners it starts). onDemand: as users start it
// (local, and any other ID on demand); else it serves local only.
func startTenancyDev(t *testing.T, onDemand bool, extra ...string) *devProc {
	t.Helper()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysPath, tenancyKeys)
	flags := append([]string{"--api-keys-file", keysPath, "--log-level", "info"}, extra...)
	if testbin.Required() {
		flags = append(flags, "--isolation", "strict") // as the shared dev on CI
	}
	start := startDev
	if onDemand {
		start = startDevOnDemand
	}
	dev, err := start(filepath.Join(dir, "data"), tenancyDevKey, flags...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	})
	return dev
}

// as is p seen through another key: its helpers (create, waitStatus,
// logs, get) then act with that key.
func (p *devProc) as(key string) *devProc {
	c := *p
	c.key = key
	return &c
}

// tenancyVictim is a task of the tenancy-victim fixture whose word and
// secret word are markers.
func tenancyVictim(t testing.TB, name, agent, runner, workspace, word, secretWord string, params map[string]any) map[string]any {
	p := map[string]any{"files": fixture(t, "tenancy-victim"), "workspace": workspace,
		"variables":           map[string]any{"word": word},
		"sensitive_variables": map[string]any{"secret_word": secretWord}}
	for k, v := range params {
		p[k] = v
	}
	return map[string]any{"name": name, "agent_id": agent, "runner_id": runner, "parameters": p}
}

// waitCompleted waits for the task's end and fails unless it completed.
func waitCompleted(t testing.TB, p *devProc, id string) {
	t.Helper()
	seen := p.waitStatus(t, id, 3*time.Minute, terminal)
	if last := seen[len(seen)-1]; last.Status != "completed" {
		t.Fatalf("task %s ended %s\n%s", id, last.Status, logText(t, p, id))
	}
}

// pickedUpHosts are the hosts whose "picked up by" line the task's log
// holds.
func pickedUpHosts(t testing.TB, p *devProc, id, runner string) []string {
	t.Helper()
	var hosts []string
	for _, l := range p.logs(t, id, "?limit=10000") {
		if h, ok := strings.CutPrefix(l.Message, "picked up by runner "+runner+" on host "); ok {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// runnerView is GET /api/v1/runners/{id} with key.
type runnerView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Hosts  []struct {
		Identity string `json:"identity"`
	} `json:"hosts"`
}

func getRunner(t testing.TB, p *devProc, key, id string) runnerView {
	t.Helper()
	r := p.call(t, http.MethodGet, "/api/v1/runners/"+id, key, nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET runner %s: %d %s", id, r.code, r.body)
	}
	var v runnerView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// hasHost reports whether one of the runner's pollers is host (worker
// identities are runner@host/pid-N).
func (v runnerView) hasHost(host string) bool {
	for _, h := range v.Hosts {
		if strings.Contains(h.Identity, "@"+host+"/") {
			return true
		}
	}
	return false
}

// onDemandStarts counts dev's "started a local runner on demand" lines by
// org.
func onDemandStarts(p *devProc) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(p.output.String(), "\n") {
		if !strings.Contains(line, "started a local runner on demand") {
			continue
		}
		var f struct{ Msg, Org, Runner string }
		if json.Unmarshal([]byte(line), &f) == nil && f.Msg == "started a local runner on demand" {
			out[f.Org] = append(out[f.Org], f.Runner)
		}
	}
	return out
}

// TestTenancy runs the dev probes on one dev (on demand, at most 3
// runners started per org), in parallel.
func TestTenancy(t *testing.T) {
	t.Parallel()
	dev := startTenancyDev(t, true, "--max-on-demand-runners", "3")
	devB := dev.as(tenancyAdminB)

	// Org B's first task names runner "local", dev's own (org A's): it runs
	// on an on-demand runner of org B, another host. It is org B's first
	// on-demand runner, before the cap probe asks for more.
	first := createAs(t, dev, tenancyAdminB, map[string]any{"name": "org-b-on-local", "agent_id": "agent-b", "runner_id": "local",
		"parameters": map[string]any{"files": tenancyTinyFiles}})
	waitCompleted(t, devB, first.ID)
	hostsB := pickedUpHosts(t, devB, first.ID, "local")
	runnerA, runnerB := getRunner(t, dev, tenancyAdminA, "local"), getRunner(t, dev, tenancyAdminB, "local")
	if len(hostsB) != 1 || len(runnerA.Hosts) != 1 || len(runnerB.Hosts) != 1 {
		t.Fatalf("org B's task on local picked up by %v; runner local as org A %+v, as org B %+v", hostsB, runnerA, runnerB)
	}
	hostB := hostsB[0]
	if !runnerB.hasHost(hostB) || runnerA.hasHost(hostB) || runnerA.Hosts[0].Identity == runnerB.Hosts[0].Identity {
		t.Fatalf("org B's task ran on host %s; runner local as org A %+v, as org B %+v", hostB, runnerA, runnerB)
	}
	if got := onDemandStarts(dev)[tenancyOrgB]; !slices.Equal(got, []string{"local"}) {
		t.Fatalf("on-demand runners of org B: %v", got)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks/"+first.ID, tenancyAdminA, nil); r.code != http.StatusNotFound {
		t.Fatalf("org A's admin reads org B's task: %d", r.code)
	}

	t.Run("HostileTaskOfOrgBOnLocal", func(t *testing.T) {
		t.Parallel()
		tenancyHostileOnLocal(t, dev, hostB)
	})
	t.Run("CodecDecodesOnlyTheCallersOrg", func(t *testing.T) {
		t.Parallel()
		tenancyCodec(t, dev)
	})
	t.Run("OnDemandRunnersCappedPerOrg", func(t *testing.T) {
		t.Parallel()
		tenancyOnDemandCap(t, dev)
	})
	t.Run("AgentKeysKeepToTheirWorkspaces", func(t *testing.T) {
		t.Parallel()
		tenancyAgentWorkspaces(t, dev)
	})
	t.Run("NothingInternalByDefault", func(t *testing.T) {
		t.Parallel()
		tenancyEgress(t, dev)
	})
}

// tenancyHostileOnLocal: org B's agent runs hostile task code on runner
// "local" while org A's tasks sit on dev's own runner local: one done (its
// state, in a workspace of the same name, holds markers), one waiting for
// approval (its plan and work dir on the host), one applying (a secret in
// its processes' env). The task code runs on org B's host and finds none
// of dev's keys and stores, org A's state, work dirs or processes.
func tenancyHostileOnLocal(t *testing.T, dev *devProc, hostB string) {
	devA, devBot := dev.as(tenancyAdminA), dev.as(tenancyBotB)
	ws := "tenancy-shared-" + randomMark(t)
	marks := map[string]string{}
	for _, k := range []string{"state word", "state secret", "plan word", "plan secret", "applying word", "applying secret", "applying env"} {
		marks[k] = "tenancy-" + strings.ReplaceAll(k, " ", "-") + "-" + randomMark(t)
	}
	done := createAs(t, dev, tenancyAdminA, tenancyVictim(t, "a-done", "agent-a", "local", ws, marks["state word"], marks["state secret"], nil))
	waiting := createAs(t, dev, tenancyAdminA, tenancyVictim(t, "a-waiting", "agent-a", "local", ws+"-waiting", marks["plan word"], marks["plan secret"],
		map[string]any{"approval": "required"}))
	t.Cleanup(func() { decide(t, dev, tenancyAdminA, waiting.ID, "reject", nil) })
	applying := createAs(t, dev, tenancyAdminA, tenancyVictim(t, "a-applying", "agent-a", "local", ws+"-applying", marks["applying word"], marks["applying secret"],
		map[string]any{"sleep_seconds": 300, "env": map[string]string{"VICTIM_SECRET": marks["applying env"]}}))
	t.Cleanup(func() { dev.call(t, http.MethodPut, "/api/v1/tasks/"+applying.ID+"/cancel", tenancyAdminA, nil) })
	waitCompleted(t, devA, done.ID)
	waitWaiting(t, devA, waiting.ID)
	devA.waitStatus(t, applying.ID, 3*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("org A's applying task ended early: %+v", s)
		}
		return s.Metadata.CurrentStep == "applying" && s.Metadata.ChangesDone >= 1 // kept done, busy sleeping
	})
	// The probe has things to look for: org A's plan file is on the host,
	// its state holds its markers.
	if plans, _ := filepath.Glob(filepath.Join(dev.dataDir, "runners", "local", "work", waiting.ID, ".terratask", "*.tfplan")); len(plans) == 0 {
		t.Fatalf("org A's waiting plan is not in dev's runner local's work dir")
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/state/default/"+ws, tenancyAdminA, nil); r.code != http.StatusOK ||
		!bytes.Contains(r.body, []byte(marks["state word"])) || !bytes.Contains(r.body, []byte(marks["state secret"])) {
		t.Fatalf("org A's state: %d %.300s", r.code, r.body)
	}

	mark := randomMark(t)
	var halves []string
	for _, m := range marks {
		halves = append(halves, m[:len(m)/2]+":"+m[len(m)/2:])
	}
	files := fixture(t, "hostile")
	for name, text := range fixture(t, "tenancy-hostile") {
		files[name] = text
	}
	hostile := createAs(t, dev, tenancyBotB, map[string]any{"name": "hostile-b", "agent_id": "agent-b", "runner_id": "local",
		"parameters": map[string]any{
			"files": files, "workspace": ws,
			"variables": map[string]any{"data_dir": dev.dataDir, "mark": mark, "victim_marks": strings.Join(halves, " "),
				"victim_ws": ws, "api": dev.api},
			"env": map[string]string{"OWN_SECRET": "own-" + mark},
		}})
	t.Cleanup(func() { killOrphans("terratask-e2e-orphan-" + mark) })
	waitCompleted(t, devBot, hostile.ID)
	log := logText(t, devBot, hostile.ID)
	want := []string{"PROBE-START", "OK: own env secret", "OK: work dir writable", "PROBE-END",
		"TENANCY-START", fmt.Sprintf("OK: %d markers to look for", len(marks)), "TENANCY-END"}
	if _, err := exec.LookPath("curl"); err == nil {
		want = append(want, "OK: own state route answers")
	}
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Fatalf("the probe did not run through (missing %q):\n%s", w, log)
		}
	}
	t.Logf("the probe's findings:\n%s", log[strings.Index(log, "PROBE-START"):])
	var found []string
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "FOUND: "); i >= 0 {
			found = append(found, l[i:])
		}
	}
	if len(found) > 0 {
		t.Errorf("org B's task code reached what it must not:\n%s", strings.Join(found, "\n"))
	}
	for _, m := range marks {
		if strings.Contains(log, m) {
			t.Errorf("org A's marker %s in org B's task log", m)
		}
	}
	// It ran on org B's runner local, not on dev's own.
	if hosts := pickedUpHosts(t, devBot, hostile.ID, "local"); len(hosts) != 1 || hosts[0] != hostB {
		t.Errorf("org B's hostile task picked up by %v, want org B's host %s", hosts, hostB)
	}
	if _, err := os.Stat(filepath.Join(dev.dataDir, "runners", "local", "work", hostile.ID)); err == nil {
		t.Errorf("org B's task has a work dir under dev's own runner local")
	}
	// Nothing written on the host outside its sandbox; no process left.
	for _, f := range []string{"/tmp/terratask-e2e-" + mark, filepath.Join(dev.dataDir, "terratask-e2e-"+mark)} {
		if _, err := os.Stat(f); err == nil {
			os.Remove(f)
			t.Errorf("org B's task code wrote %s on the host", f)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for orphans("terratask-e2e-orphan-"+mark) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a process org B's task started outlived it")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Org A's state of the workspace both named: org B's admin and agent
	// get 403 (Terraform takes a 404 for "no state yet"), its versions
	// too; org B's own workspace of that name holds none of org A's.
	for _, key := range []string{tenancyAdminB, tenancyBotB} {
		for _, path := range []string{"/api/v1/state/default/" + ws, "/api/v1/state/default/" + ws + "/versions", "/api/v1/state/default/" + ws + "/lock"} {
			r := dev.call(t, http.MethodGet, path, key, nil)
			if r.code != http.StatusForbidden || bytes.Contains(r.body, []byte(marks["state word"])) {
				t.Errorf("GET %s as org B: %d %.300s", path, r.code, r.body)
			}
		}
	}
	r := dev.call(t, http.MethodGet, "/api/v1/state/"+tenancyOrgB+"/"+ws, tenancyAdminB, nil)
	if r.code != http.StatusOK || !bytes.Contains(r.body, []byte(mark)) {
		t.Fatalf("org B's own state of %s: %d %.300s", ws, r.code, r.body)
	}
	for k, m := range marks {
		if bytes.Contains(r.body, []byte(m)) {
			t.Errorf("org B's state of %s holds org A's %s", ws, k)
		}
	}
}

// tenancyCodec: org B's admin posts org A's workflow history payloads (as
// anyone with access to Temporal reads them) to the codec route: they come
// back still encrypted, while its own decode; org A's admin decodes org
// A's, never org B's; org B's agent-bound key may not use the codec.
func tenancyCodec(t *testing.T, dev *devProc) {
	mA, mB := "tenancy-codec-a-"+randomMark(t), "tenancy-codec-b-"+randomMark(t)
	// (Workspace names are search attributes, plain by design: no marker
	// in them.)
	tA := createAs(t, dev, tenancyAdminA, tenancyVictim(t, "codec-a", "agent-a", "local", "codec-"+randomMark(t), mA, mA+"-secret", nil))
	tB := createAs(t, dev, tenancyAdminB, tenancyVictim(t, "codec-b", "agent-b", "local", "codec-"+randomMark(t), mB, mB+"-secret", nil))
	waitCompleted(t, dev.as(tenancyAdminA), tA.ID)
	waitCompleted(t, dev.as(tenancyAdminB), tB.ID)

	secretKey, err := os.ReadFile(filepath.Join(dev.dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	master, err := secret.ParseKey(string(secretKey))
	if err != nil {
		t.Fatal(err)
	}
	masterID, err := codec.KeyID(master)
	if err != nil {
		t.Fatal(err)
	}
	// encrypted reads a task's history as anyone with access to Temporal
	// does, and returns its payloads under its org's key and under the
	// control plane's own key (the workspace queue's signals); none is
	// under another key (another org's).
	encrypted := func(id, org string, markers []string) (own, control []*commonpb.Payload) {
		events := rawHistory(t, dev, id)
		msgs := make([]proto.Message, 0, len(events))
		for _, e := range events {
			msgs = append(msgs, e)
		}
		enc, _ := checkEncrypted(t, "history of "+id, msgs, markers)
		orgID := orgKeyID(t, secretKey, org)
		for _, p := range enc {
			switch kid := string(p.GetMetadata()[codec.MetadataKeyID]); kid {
			case orgID:
				own = append(own, p)
			case masterID:
				control = append(control, p)
			default:
				t.Fatalf("%s: a payload under key %s, neither org %s's (%s) nor the control plane's (%s)", id, kid, org, orgID, masterID)
			}
		}
		if len(own) < 10 {
			t.Fatalf("%s: %d payloads under org %s's key, %d under the control plane's", id, len(own), org, len(control))
		}
		return own, control
	}
	encA, controlA := encrypted(tA.ID, "default", []string{mA})
	encB, _ := encrypted(tB.ID, tenancyOrgB, []string{mB})
	both := append(slices.Clone(encA), encB...)

	// decoded posts both orgs' payloads with key and returns the data of
	// those it decoded, failing on any it decoded of the other org.
	decoded := func(key, name string, own, other []*commonpb.Payload, ownFirst bool) string {
		t.Helper()
		in, ownFrom, ownTo := append(slices.Clone(own), other...), 0, len(own)
		if !ownFirst {
			in, ownFrom, ownTo = append(slices.Clone(other), own...), len(other), len(other)+len(own)
		}
		r, out := decodeThroughCodec(t, dev, key, in)
		if r.code != http.StatusOK || len(out) != len(in) {
			t.Fatalf("%s decodes: %d %s", name, r.code, r.body)
		}
		var plain bytes.Buffer
		for i, p := range out {
			isOwn := i >= ownFrom && i < ownTo
			enc := string(p.GetMetadata()["encoding"]) == codec.Encoding
			switch {
			case isOwn && enc:
				t.Fatalf("%s: its own org's payload %d came back encrypted", name, i)
			case !isOwn && (!enc || !bytes.Equal(p.GetData(), in[i].GetData())):
				t.Fatalf("%s decoded the other org's payload %d: %q", name, i, p.GetData())
			case isOwn:
				plain.Write(p.GetData())
			}
		}
		return plain.String()
	}
	if got := decoded(tenancyAdminB, "org B's admin", encB, append(slices.Clone(encA), controlA...), false); !strings.Contains(got, mB) || strings.Contains(got, mA) {
		t.Errorf("org B's admin decoded %d bytes: own marker %v, org A's %v", len(got), strings.Contains(got, mB), strings.Contains(got, mA))
	}
	if got := decoded(tenancyAdminA, "org A's admin", encA, encB, true); !strings.Contains(got, mA) || strings.Contains(got, mB) {
		t.Errorf("org A's admin decoded %d bytes: own marker %v, org B's %v", len(got), strings.Contains(got, mA), strings.Contains(got, mB))
	}
	if got := decoded(tenancyDevKey, "dev's admin key", encA, encB, true); !strings.Contains(got, mA) {
		t.Errorf("dev's admin key did not decode its org's payloads")
	}
	// Org B's agent-bound key may not decode at all (payloads are per org).
	if r, _ := decodeThroughCodec(t, dev, tenancyBotB, both); r.code != http.StatusForbidden || strings.Contains(string(r.body), mA) {
		t.Errorf("org B's agent key decodes: %d %s", r.code, r.body)
	}
}

// tenancyOnDemandCap: org B's agent key names 10 runner IDs; dev (at most
// 3 on-demand runners per org) starts org B's second and third runners
// only (its first is local's), the other tasks wait and end
// runner_unavailable; then org A names one of the IDs org B was refused
// and gets a runner of its own.
func tenancyOnDemandCap(t *testing.T, dev *devProc) {
	devBot := dev.as(tenancyBotB)
	ids := make([]string, 10)
	tasks := map[string]string{} // runner ID -> task ID
	for i := range ids {
		ids[i] = fmt.Sprintf("cap-%d", i)
		tk := createAs(t, dev, tenancyBotB, map[string]any{"name": "cap-" + ids[i], "agent_id": "agent-b", "runner_id": ids[i],
			"parameters": map[string]any{"files": tenancyTinyFiles, "runner_timeout": "20s"}})
		tasks[ids[i]] = tk.ID
	}
	var ran, waited []string
	for _, id := range ids {
		seen := devBot.waitStatus(t, tasks[id], 2*time.Minute, terminal)
		switch tk := devBot.get(t, tasks[id]); {
		case seen[len(seen)-1].Status == "completed":
			ran = append(ran, id)
		case tk.Status == "failed" && tk.Result != nil && tk.Result.Error != nil && tk.Result.Error.Code == "runner_unavailable":
			waited = append(waited, id)
		default:
			t.Fatalf("task on %s ended %s: %+v\n%s", id, tk.Status, tk.Result, logText(t, devBot, tasks[id]))
		}
	}
	started := onDemandStarts(dev)[tenancyOrgB]
	if len(ran) != 2 || len(started) != 3 || !slices.Contains(started, "local") {
		t.Fatalf("with at most 3 on-demand runners per org, org B's tasks ran on %v and waited on %v; dev started org B's %v", ran, waited, started)
	}
	for _, id := range ran {
		if !slices.Contains(started, id) {
			t.Fatalf("a task ran on %s, which dev did not start (started %v)", id, started)
		}
	}
	refusals := 0
	for _, line := range strings.Split(dev.output.String(), "\n") {
		if strings.Contains(line, "beyond the org's on-demand runners") && strings.Contains(line, `"org":"`+tenancyOrgB+`"`) {
			refusals++
		}
	}
	if refusals != len(waited) {
		t.Errorf("dev refused %d runners of org B, %d tasks waited", refusals, len(waited))
	}
	// The org's runners list says as much: 3 online.
	r := dev.call(t, http.MethodGet, "/api/v1/runners", tenancyAdminB, nil)
	if r.code != http.StatusOK {
		t.Fatalf("runners of org B: %d %s", r.code, r.body)
	}
	online := 0
	for _, v := range r.array(t) {
		if v["status"] == "online" {
			online++
		}
	}
	if online != 3 {
		t.Errorf("org B has %d runners online, want 3: %s", online, r.body)
	}

	// The cap is per org: org A names one of the IDs refused to org B and
	// gets a runner of its own; the ID stays offline for org B.
	id := waited[0]
	tk := createAs(t, dev, tenancyAdminA, map[string]any{"name": "org-a-on-" + id, "agent_id": "agent-a", "runner_id": id,
		"parameters": map[string]any{"files": tenancyTinyFiles, "runner_timeout": "1m"}})
	waitCompleted(t, dev.as(tenancyAdminA), tk.ID)
	if got := onDemandStarts(dev)["default"]; !slices.Equal(got, []string{id}) {
		t.Errorf("dev started org A's on-demand runners %v, want [%s]", got, id)
	}
	if v := getRunner(t, dev, tenancyAdminA, id); v.Status != "online" || len(v.Hosts) != 1 {
		t.Errorf("runner %s as org A: %+v", id, v)
	}
	if v := getRunner(t, dev, tenancyAdminB, id); v.Status != "offline" || len(v.Hosts) != 0 {
		t.Errorf("runner %s as org B: %+v", id, v)
	}
}

// tenancyAgentWorkspaces: agent-1's task makes a workspace agent-1's;
// agent-2's operator creating a task on it gets a 404 naming it, and
// nothing of agent-2 runs; agent-2's admin reading its state gets a 404.
// (In depth: workspaces_test.go.)
func tenancyAgentWorkspaces(t *testing.T, dev *devProc) {
	ws, m := "tenancy-agent-1-"+randomMark(t), "tenancy-agent-1-word-"+randomMark(t)
	own := createAs(t, dev, tenancyBot1, tenancyVictim(t, "agent-1-own", "agent-1", "local", ws, m, m+"-secret", nil))
	waitCompleted(t, dev, own.ID)
	body, _ := json.Marshal(tenancyVictim(t, "agent-2-on-agent-1s", "agent-2", "local", ws, "agent-2-was-here", "x", map[string]any{"action": "destroy"}))
	r := dev.call(t, http.MethodPost, "/api/v1/tasks", tenancyBot2, body)
	if code, _, details := r.errorOf(t); r.code != http.StatusNotFound || code != "not_found" || details["workspace"] != ws {
		t.Errorf("agent-2's operator on agent-1's workspace: %d %s", r.code, r.body)
	}
	if r := dev.call(t, http.MethodGet, "/api/v1/tasks/agent/agent-2?limit=1000", tenancyDevKey, nil); r.code != http.StatusOK || len(r.array(t)) != 0 {
		t.Errorf("tasks of agent-2: %d %s", r.code, r.body)
	}
	for _, key := range []string{tenancyAdmin2, tenancyBot2} {
		r := dev.call(t, http.MethodGet, "/api/v1/state/default/"+ws, key, nil)
		if code, _, _ := r.errorOf(t); r.code != http.StatusNotFound || code != "not_found" || bytes.Contains(r.body, []byte(m)) {
			t.Errorf("agent-2's key reads agent-1's state: %d %.300s", r.code, r.body)
		}
	}
	// (The state is there: the org's unbound admin reads it.)
	if r := dev.call(t, http.MethodGet, "/api/v1/state/default/"+ws, tenancyAdminA, nil); r.code != http.StatusOK || !bytes.Contains(r.body, []byte(m)) {
		t.Errorf("org A's admin reads agent-1's state: %d %.300s", r.code, r.body)
	}
}

// tenancyEgress: by default an admin's webhook to loopback and an agent's
// remote module source are refused (400); nothing reaches the receiver.
// (In depth: server/egress_test.go.)
func tenancyEgress(t *testing.T, dev *devProc) {
	var hits atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer rcv.Close()
	hook, _ := json.Marshal(map[string]any{"url": rcv.URL + "/hook"})
	r := dev.call(t, http.MethodPost, "/api/v1/webhooks", tenancyAdminB, hook)
	if code, _, details := r.errorOf(t); r.code != http.StatusBadRequest || code != "bad_request" || details["field"] != "url" {
		t.Errorf("webhook to %s: %d %s", rcv.URL, r.code, r.body)
	}
	for _, src := range []string{rcv.URL + "/module.zip", "git::" + rcv.URL + "/repo.git", "s3::https://s3.amazonaws.com/bucket/module.zip"} {
		body, _ := json.Marshal(map[string]any{"name": "egress", "agent_id": "agent-b", "runner_id": "local",
			"parameters": map[string]any{"source": src}})
		r := dev.call(t, http.MethodPost, "/api/v1/tasks", tenancyBotB, body)
		if code, _, details := r.errorOf(t); r.code != http.StatusBadRequest || code != "bad_request" || details["field"] != "parameters.source" {
			t.Errorf("source %s: %d %s", src, r.code, r.body)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}

// orgRunnerKey is org's runner key, as an operator makes it: `terratask
// keys org` on the secret key.
func orgRunnerKey(t *testing.T, dev *devProc, org string) string {
	t.Helper()
	out, err := exec.Command(binPath, "keys", "org", "--org", org, "--secret-key-file", filepath.Join(dev.dataDir, "secret.key")).Output()
	if err != nil {
		t.Fatalf("terratask keys org --org %s: %v", org, err)
	}
	return strings.TrimSpace(string(out))
}

// startOrgRunner starts `terratask runner --org org --id id` against dev's
// Temporal and runner API, holding key (TERRATASK_SECRET_KEY), logging at
// info.
func startOrgRunner(t *testing.T, dev *devProc, org, key, id string) *runnerProc {
	t.Helper()
	p := launchOrgRunner(t, dev, org, key, id)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.out.String(), "terratask runner ready") {
		select {
		case <-p.done:
			t.Fatalf("runner %s/%s exited:\n%s", org, id, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner %s/%s did not start:\n%s", org, id, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// launchOrgRunner starts the process of startOrgRunner without waiting.
func launchOrgRunner(t *testing.T, dev *devProc, org, key, id string) *runnerProc {
	t.Helper()
	return launchRunner(t, dev, org, key, id, t.TempDir(), []string{"--log-level", "info"})
}

// TestTenancyRunnerProcesses: `terratask runner` processes of org B on a
// dev that serves runner local only (no runner on demand). A runner of org
// B given org B's key runs org B's tasks of its ID, and a task of org A
// naming the same ID never reaches it (runner_unavailable); a runner of
// org B given org A's key does not start (the runner API refuses its
// credential), so its task is never picked up, and none of it appears in
// that runner's output.
func TestTenancyRunnerProcesses(t *testing.T) {
	t.Parallel()
	dev := startTenancyDev(t, false)
	devA, devB := dev.as(tenancyAdminA), dev.as(tenancyAdminB)
	keyA, keyB := orgRunnerKey(t, dev, "default"), orgRunnerKey(t, dev, tenancyOrgB)
	if keyA == keyB {
		t.Fatal("org A's and org B's runner keys are the same")
	}
	const id = "shared-id"
	rb := startOrgRunner(t, dev, tenancyOrgB, keyB, id)
	wrong := launchOrgRunner(t, dev, tenancyOrgB, keyA, "wrong-key")
	select {
	case <-wrong.done:
	case <-time.After(time.Minute):
		t.Fatalf("the runner holding another org's key did not stop:\n%s", wrong.out.String())
	}
	if out := wrong.out.String(); !strings.Contains(out, "refuses this runner's credential") || strings.Contains(out, "terratask runner ready") {
		t.Fatalf("the runner holding another org's key:\n%s", out)
	}
	for _, r := range []*runnerProc{rb, wrong} {
		if k, _ := os.ReadFile(filepath.Join(dev.dataDir, "secret.key")); strings.Contains(r.out.String(), strings.TrimSpace(string(k))) ||
			strings.Contains(r.out.String(), keyA) || strings.Contains(r.out.String(), keyB) {
			t.Fatal("a key in a runner's output")
		}
	}

	mA, mB, mWrong := "tenancy-proc-a-"+randomMark(t), "tenancy-proc-b-"+randomMark(t), "tenancy-proc-wrong-"+randomMark(t)
	tA := createAs(t, dev, tenancyAdminA, tenancyVictim(t, "proc-a", "agent-a", id, "proc-ws", mA, mA+"-secret",
		map[string]any{"runner_timeout": "5s"}))
	tB := createAs(t, dev, tenancyAdminB, tenancyVictim(t, "proc-b", "agent-b", id, "proc-ws", mB, mB+"-secret",
		map[string]any{"runner_timeout": "1m"}))
	tWrong := createAs(t, dev, tenancyAdminB, tenancyVictim(t, "proc-wrong", "agent-b", "wrong-key", "proc-wrong", mWrong, mWrong+"-secret",
		map[string]any{"runner_timeout": "5s"}))

	// Org B's task completes on org B's runner process.
	waitCompleted(t, devB, tB.ID)
	if hosts := pickedUpHosts(t, devB, tB.ID, id); len(hosts) != 1 || hosts[0] != rb.hostID(t) {
		t.Fatalf("org B's task picked up by %v, want org B's runner %s", hosts, rb.hostID(t))
	}
	// Org A's task naming the same ID waits for a runner of org A's and
	// ends runner_unavailable.
	devA.waitStatus(t, tA.ID, time.Minute, terminal)
	if got := devA.get(t, tA.ID); got.Status != "failed" || got.Result == nil || got.Result.Error == nil ||
		got.Result.Error.Code != "runner_unavailable" || got.StartedAt != nil || len(pickedUpHosts(t, devA, tA.ID, id)) != 0 {
		t.Fatalf("org A's task on org B's runner ID: %+v", got)
	}
	// Each org sees its own hosts of the ID: org B one, org A none.
	if v := getRunner(t, dev, tenancyAdminB, id); v.Status != "online" || len(v.Hosts) != 1 || !v.hasHost(rb.hostID(t)) {
		t.Errorf("runner %s as org B: %+v", id, v)
	}
	if v := getRunner(t, dev, tenancyAdminA, id); v.Status != "offline" || len(v.Hosts) != 0 {
		t.Errorf("runner %s as org A: %+v", id, v)
	}

	// The runner with org A's key never started: the task ends never
	// picked up.
	seen := devB.waitStatus(t, tWrong.ID, 2*time.Minute, terminal)
	for _, s := range seen {
		if s.Status != "pending" && !terminal(s) {
			t.Fatalf("the task on the runner holding another org's key got to %+v", s)
		}
	}
	got := devB.get(t, tWrong.ID)
	if got.Status != "failed" || got.StartedAt != nil || len(pickedUpHosts(t, devB, tWrong.ID, "wrong-key")) != 0 {
		t.Fatalf("the task on the runner holding another org's key: %+v", got)
	}
	t.Logf("the task on the runner holding another org's key ended %s: %+v", got.Status, got.Result.Error)

	// Nothing of org A's task, nor of the task it could not open, reached a
	// runner of org B: not its output, not its data dir.
	for _, r := range []*runnerProc{rb, wrong} {
		for _, m := range []string{mA, tA.ID, mWrong} {
			if strings.Contains(r.out.String(), m) {
				t.Errorf("%q in the output of a runner of org B", m)
			}
		}
		_ = filepath.WalkDir(r.dataDir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil && (bytes.Contains(b, []byte(mA)) || bytes.Contains(b, []byte(mWrong))) {
				t.Errorf("a marker of a task the runner must not open in %s", path)
			}
			return nil
		})
	}
}
