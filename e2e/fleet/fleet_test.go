// Package fleet runs terratask scaled out, all on loopback: a real Temporal
// server (built from go.temporal.io/server) on a throwaway PostgreSQL, the
// store on PostgreSQL, two `terratask server` replicas and two `terratask
// runner` processes of one runner ID, each keeping state on the HTTP state
// backend of a different replica (no shared disk). One runner is SIGKILLed
// while tasks are applying; every task must still complete, on both
// replicas' lists alike, with its logs whole and the state the killed host
// wrote read by the surviving host.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	numTasks = 50
	runnerID = "fleet"
	adminKey = "fleet-admin-key-3c9e"
)

// TestFleetScaleOut is the multi-process test of the "Scale out" issue.
func TestFleetScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal cluster node, PostgreSQL and six processes; skipped with -short")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Fatal("terraform is not on PATH; the fleet test runs the real binary")
	}
	f := startFleet(t, 2)
	ts, replicas, dir, binPath, env, storeDSN, began := f.temporal, f.replicas, f.dir, f.bin, f.env, f.storeDSN, f.began

	// Two runner processes of one ID, each on the state backend of another
	// replica.
	runners := map[string]*proc{} // by host ID
	var hostIDs []string
	for i := range 2 {
		p := startProc(t, fmt.Sprintf("runner-%d", i+1), filepath.Join(dir, fmt.Sprintf("runner-%d.log", i+1)), env, binPath,
			"runner", "--org", "default", "--id", runnerID, "--temporal-address", ts.address, "--store", storeDSN,
			"--secret-key-file", f.orgKeyPath, "--data-dir", filepath.Join(dir, fmt.Sprintf("runner-%d", i+1)),
			"--state-url", replicas[i].base, "--log-level", "info")
		ready := waitLogLine(t, p, "terratask runner ready", 2*time.Minute)
		host, _ := ready["host"].(string)
		if host == "" || runners[host] != nil {
			t.Fatalf("runner %d reported host %q", i+1, host)
		}
		runners[host] = p
		hostIDs = append(hostIDs, host)
	}
	t.Logf("fleet up (2 servers, 2 runners of %q) after %s", runnerID, time.Since(began).Round(100*time.Millisecond))
	dumpLogs := func() string {
		var b strings.Builder
		for _, p := range append([]*proc{ts.proc, replicas[0].proc, replicas[1].proc}, runners[hostIDs[0]], runners[hostIDs[1]]) {
			b.WriteString(p.tail())
			b.WriteString("\n")
		}
		return b.String()
	}
	failf := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s", append(args, dumpLogs())...)
	}

	// 50 tasks, alternately through each replica, a little apart so that at
	// any moment some are applying and some are done.
	files := fixture(t, "fleet")
	body := func(i int, extra map[string]any) map[string]any {
		params := map[string]any{"files": files, "parallelism": 1, "sleep_seconds": 2}
		for k, v := range extra {
			params[k] = v
		}
		return map[string]any{
			"name": fmt.Sprintf("fleet-%02d", i), "agent_id": "agent-fleet", "runner_id": runnerID,
			"metadata": map[string]any{"n": fmt.Sprint(i)}, "parameters": params,
		}
	}
	ids := make([]string, 0, numTasks)
	// Every tenth task is followed live through the other replica.
	followCtx, stopFollowing := context.WithCancel(context.Background())
	defer stopFollowing()
	followers := map[string]*replicaFollower{}
	for i := range numTasks {
		tk, err := replicas[i%2].create(body(i, nil))
		if err != nil {
			failf("creating task %d through replica %d: %v", i, i%2+1, err)
		}
		ids = append(ids, tk.ID)
		if i%10 == 0 {
			followers[tk.ID] = followThrough(followCtx, replicas[(i+1)%2], tk.ID)
		}
		time.Sleep(150 * time.Millisecond)
	}
	t.Logf("%d tasks created after %s", numTasks, time.Since(began).Round(100*time.Millisecond))

	// Kill a runner host while it is applying: the host with the most
	// applies in flight, preferably one that has also completed a task
	// (whose state the other host must then read).
	lastHost := map[string]string{} // task -> last host seen
	var victim string
	killDeadline := time.Now().Add(3 * time.Minute)
	for victim == "" {
		applying := map[string]int{}
		completed := map[string]int{}
		for i, id := range ids {
			st, err := replicas[i%2].status(id)
			if err != nil {
				failf("status of %s: %v", id, err)
			}
			if st.Metadata.Host != "" {
				lastHost[id] = st.Metadata.Host
			}
			switch {
			case st.Status == "running" && st.Metadata.CurrentStep == "applying" && st.Metadata.Host != "":
				applying[st.Metadata.Host]++
			case st.Status == "completed" && lastHost[id] != "":
				completed[lastHost[id]]++
			}
		}
		best := ""
		for _, h := range hostIDs {
			if applying[h] > 0 && (best == "" || applying[h] > applying[best]) {
				best = h
			}
		}
		if best != "" && (completed[best] > 0 || time.Now().After(killDeadline.Add(-2*time.Minute))) {
			victim = best
			t.Logf("killing host %s with %d task(s) applying and %d completed (other host: %d applying, %d completed)",
				victim, applying[victim], completed[victim], applying[other(hostIDs, victim)], completed[other(hostIDs, victim)])
			break
		}
		if time.Now().After(killDeadline) {
			failf("no host was applying a task; applying %v, completed %v", applying, completed)
		}
		time.Sleep(200 * time.Millisecond)
	}
	killedAt := time.Now()
	runners[victim].kill()
	survivor := other(hostIDs, victim)

	// Every task completes.
	waitDeadline := time.Now().Add(5 * time.Minute)
	for {
		pending := 0
		for i, id := range ids {
			st, err := replicas[(i+1)%2].status(id)
			if err != nil {
				failf("status of %s: %v", id, err)
			}
			switch st.Status {
			case "completed":
				if st.Progress != 100 {
					failf("task %s completed at progress %d", id, st.Progress)
				}
			case "failed", "cancelled":
				tk, _ := replicas[0].get(id)
				res, _ := json.Marshal(tk.Result)
				logs, _ := replicas[0].logs(id)
				failf("task %s ended %s: %s\n%s", id, st.Status, res, messages(logs))
			default:
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(waitDeadline) {
			failf("%d task(s) still not completed %s after the kill", pending, time.Since(killedAt).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
	t.Logf("all %d tasks completed %s after the kill (%s since start)", numTasks, time.Since(killedAt).Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))

	// Logs: none lost, none doubled; which hosts ran each task.
	pickedUp := regexp.MustCompile(`^picked up by runner ` + runnerID + ` on host (\S+)`)
	var resumed, doneOnVictim []string
	var followLags []time.Duration
	for i, id := range ids {
		logs, err := replicas[i%2].logs(id)
		if err != nil {
			failf("logs of %s: %v", id, err)
		}
		if problem := lineDoubledOrLost(logs); problem != "" {
			failf("task %s: %s\n%s", id, problem, messages(logs))
		}
		hosts := map[string]bool{}
		complete := false
		for _, l := range logs {
			if m := pickedUp.FindStringSubmatch(l.Message); m != nil {
				hosts[m[1]] = true
			}
			if strings.Contains(l.Message, "Apply complete") || strings.HasPrefix(l.Message, "applying complete") {
				complete = true
			}
		}
		if !complete {
			failf("task %s: no \"Apply complete\" nor \"applying complete\" line in %d log entries:\n%s", id, len(logs), messages(logs))
		}
		if len(hosts) == 0 {
			failf("task %s: no \"picked up by\" line:\n%s", id, messages(logs))
		}
		for h := range hosts {
			if runners[h] == nil {
				failf("task %s picked up by unknown host %s", id, h)
			}
		}
		switch {
		case hosts[victim] && hosts[survivor]:
			resumed = append(resumed, id)
		case hosts[victim]:
			doneOnVictim = append(doneOnVictim, id)
		}
		if f := followers[id]; f != nil {
			lags, err := f.check(logs)
			if err != nil {
				failf("%v", err)
			}
			followLags = append(followLags, lags...)
		}
		tk, err := replicas[(i+1)%2].get(id)
		if err != nil {
			failf("get %s: %v", id, err)
		}
		if tk.Status != "completed" || tk.Result == nil || tk.Result.Error != nil || fmt.Sprint(tk.Result.Output["steps"]) != "3" {
			failf("task %s: %+v", id, tk)
		}
	}
	t.Logf("tasks that moved from the killed host to the survivor: %d; completed on the killed host before the kill: %d", len(resumed), len(doneOnVictim))
	t.Logf("%d tasks followed through the other replica: every line once, then the end; terraform line -> follower median %s over %d lines",
		len(followers), medianDuration(followLags), len(followLags))
	if len(resumed) == 0 {
		failf("no task was picked up by both hosts: the kill did not interrupt any task")
	}

	if len(doneOnVictim) == 0 {
		failf("no task completed on the killed host before the kill: no state of its own to read on the survivor")
	}

	// The shared state: a plan of a workspace applied wholly on the killed
	// host, and of one the survivor finished after the kill, run now on the
	// survivor, plans no change.
	checkWorkspaces := []string{doneOnVictim[0], resumed[0]}
	for j, ws := range checkWorkspaces {
		tk, err := replicas[j%2].create(body(100+j, map[string]any{"action": "plan", "workspace": ws}))
		if err != nil {
			failf("creating the plan of workspace %s: %v", ws, err)
		}
		ids = append(ids, tk.ID)
		st := waitTerminal(t, replicas[(j+1)%2], tk.ID, 2*time.Minute, failf)
		logs, err := replicas[j%2].logs(tk.ID)
		if err != nil {
			failf("logs of %s: %v", tk.ID, err)
		}
		onSurvivor := false
		for _, l := range logs {
			if m := pickedUp.FindStringSubmatch(l.Message); m != nil {
				onSurvivor = m[1] == survivor
			}
		}
		if st.Status != "completed" || st.Metadata.PlannedChanges != 0 || !onSurvivor ||
			!strings.Contains(messages(logs), "Plan: 0 to add, 0 to change, 0 to destroy.") ||
			!strings.Contains(messages(logs), "on the terratask server") {
			failf("plan of workspace %s (applied on the killed host, at least in part) on the survivor: %+v\n%s", ws, st, messages(logs))
		}
		// The server kept the workspace's versions, and no lock is left.
		var versions []struct {
			Version int64  `json:"version"`
			TaskID  string `json:"task_id"`
		}
		code, _, err := replicas[j%2].do("GET", "/api/v1/state/default/"+ws+"/versions", nil, &versions)
		if err != nil || code != 200 || len(versions) == 0 || versions[0].TaskID != ws {
			failf("state versions of workspace %s: %d %v %+v", ws, code, err, versions)
		}
		var lock struct {
			Locked bool `json:"locked"`
		}
		if code, _, err := replicas[(j+1)%2].do("GET", "/api/v1/state/default/"+ws+"/lock", nil, &lock); err != nil || code != 200 || lock.Locked {
			failf("lock of workspace %s after its tasks: %d %v locked=%v", ws, code, err, lock.Locked)
		}
	}

	// Both replicas list the same tasks with the same statuses.
	listDeadline := time.Now().Add(time.Minute)
	for {
		a, errA := replicas[0].list()
		b, errB := replicas[1].list()
		if errA != nil || errB != nil {
			failf("lists: %v, %v", errA, errB)
		}
		diff := compareLists(ids, a, b)
		if diff == "" {
			break
		}
		if time.Now().After(listDeadline) {
			failf("the replicas' lists disagree: %s", diff)
		}
		time.Sleep(time.Second)
	}
	t.Logf("fleet test done in %s (after the binaries were built)", time.Since(began).Round(100*time.Millisecond))
}

// lineDoubledOrLost names a doubled or lost line, "" if there is none. A
// runner line is named by run, step, attempt and seq (metadata): no name may
// repeat, and each attempt's seqs run from 1 without a gap. Lines that only
// look alike are fine: an interrupted apply (a step stopped before the host
// moves) ends with one "Error: execution halted" per halted node,
// microseconds apart, identical at the API's millisecond precision.
func lineDoubledOrLost(logs []LogEntry) string {
	seen := map[string]bool{}
	streams := map[string]map[int]bool{}
	for _, l := range logs {
		m := l.Metadata
		var k string
		switch seq, ok := m["seq"].(float64); {
		case ok:
			stream := fmt.Sprint(m["run"], "/", m["step"], "/", m["attempt"])
			if streams[stream] == nil {
				streams[stream] = map[int]bool{}
			}
			streams[stream][int(seq)] = true
			k = fmt.Sprint(stream, "#", int(seq))
		case m["component"] == "terraform" || m["component"] == "runner":
			return fmt.Sprintf("runner log entry without its seq: %+v", l)
		default:
			k = fmt.Sprint(m["component"], "/", l.Timestamp, "/", l.Message)
		}
		if seen[k] {
			return fmt.Sprintf("duplicated log entry %s: %+v", k, l)
		}
		seen[k] = true
	}
	for stream, seqs := range streams {
		for i := 1; i <= len(seqs); i++ {
			if !seqs[i] {
				return fmt.Sprintf("stream %s lost line %d of %d", stream, i, len(seqs))
			}
		}
	}
	return ""
}

func other(hosts []string, h string) string {
	if hosts[0] == h {
		return hosts[1]
	}
	return hosts[0]
}

// compareLists says how the two lists differ from each other or from want
// (all completed); "" when they agree.
func compareLists(want []string, a, b []Task) string {
	sum := func(ts []Task) map[string]string {
		m := map[string]string{}
		for _, t := range ts {
			m[t.ID] = t.Status
		}
		return m
	}
	ma, mb := sum(a), sum(b)
	if len(a) != len(ma) || len(b) != len(mb) {
		return fmt.Sprintf("a list repeats a task (%d/%d entries, %d/%d IDs)", len(a), len(b), len(ma), len(mb))
	}
	var diffs []string
	for _, id := range want {
		if ma[id] != "completed" || mb[id] != "completed" {
			diffs = append(diffs, fmt.Sprintf("%s: %q vs %q", id, ma[id], mb[id]))
		}
	}
	if len(ma) != len(want) || len(mb) != len(want) {
		diffs = append(diffs, fmt.Sprintf("%d and %d tasks listed, want %d", len(ma), len(mb), len(want)))
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}
