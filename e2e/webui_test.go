package e2e

import (
	"context"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

// chromium returns Debian's headless Chromium. Under CI it must exist (.ci/run
// installs it); elsewhere the test is skipped.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium is not installed (apt-get install chromium); the Web UI check runs under CI")
	return ""
}

// renderedPage loads url in headless Chromium, lets its scripts run (the
// Web UI fetches the workflow and sends payloads to terratask's codec), and
// returns the DOM with URL escapes undone (the UI renders markdown summaries
// in frames whose content is in their URL), or "" when Chromium failed (it
// is started afresh by the caller's next attempt).
func renderedPage(t *testing.T, browser, profile, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--virtual-time-budget=30000", "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		t.Logf("chromium %s: %v (retrying)", url, err)
		return ""
	}
	return string(out) + "\n" + urlUnescape(string(out))
}

// pageWith renders url until it contains want, at most 4 times (the UI
// loads asynchronously, and a loaded machine may need another look).
func pageWith(t *testing.T, browser, profile, url, want string) string {
	t.Helper()
	var dom string
	for attempt := 0; attempt < 4; attempt++ {
		if dom = renderedPage(t, browser, profile, url); strings.Contains(dom, want) {
			break
		}
	}
	return dom
}

var percentEscape = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)

// urlUnescape undoes %XX escapes, leaving anything else as it is.
func urlUnescape(s string) string {
	return percentEscape.ReplaceAllStringFunc(s, func(e string) string {
		b, _ := hex.DecodeString(e[1:])
		return string(b)
	})
}

// TestWebUIExplainsTheTask opens a finished task in terratask dev's Web UI
// with headless Chromium. The UI reads the workflow from Temporal, where
// every payload is encrypted, and decodes it through terratask's codec
// (with the codec session the banner's UI session URL opens; without it
// the payloads stay encrypted): its pages show the decoded input, the task's
// static summary (name and agent) and details, and each step's activity
// summary.
func TestWebUIExplainsTheTask(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	if shared.ui == "" {
		t.Fatal("no Web UI address in the banner")
	}
	m := randomMarker(t)
	tk := shared.create(t, map[string]any{
		"name": "ui-task-" + m, "agent_id": "agent-ui", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "workspace")},
	})
	if last := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal); last[len(last)-1].Status != "completed" {
		t.Fatalf("task ended %+v", last[len(last)-1])
	}
	base := shared.ui + "/namespaces/default/workflows/" + tk.ID
	// Without the session the UI shows no decoded input.
	if dom := renderedPage(t, browser, t.TempDir(), base); strings.Contains(dom, "ui-task-"+m) {
		t.Fatalf("the Web UI decoded %s without the codec session", tk.ID)
	}
	if shared.uiSession == "" {
		t.Fatal("no UI session in the banner")
	}
	profile := t.TempDir() // one browser profile: the session's cookie
	renderedPage(t, browser, profile, shared.uiSession)
	dom := pageWith(t, browser, profile, base, "ui-task-"+m)
	// The workflow's input, decoded by the codec, is on the main page.
	if !strings.Contains(dom, "ui-task-"+m) {
		t.Fatalf("the Web UI page of %s does not show the decoded input (task name)", tk.ID)
	}
	runID := between(dom, "/namespaces/default/workflows/"+tk.ID+"/", "/")
	if runID == "" {
		t.Fatalf("no run ID on the page")
	}
	meta := pageWith(t, browser, profile, base+"/"+runID+"/user-metadata", "ui-task-"+m+" (agent agent-ui)")
	for _, want := range []string{"ui-task-" + m + " (agent agent-ui)", "runner: `local`"} {
		if !strings.Contains(meta, want) {
			t.Errorf("the user metadata page lacks %q", want)
		}
	}
	// The event history names each step's activity by its summary; the
	// apply's carries the plan's counts (the fixture adds 3 resources).
	want := []string{"terraform init", "terraform plan", "terraform apply: 3 to add, 0 to change, 0 to destroy", "claim a host of runner local"}
	history := pageWith(t, browser, profile, base+"/"+runID+"/history", want[2])
	for _, w := range want {
		if !strings.Contains(history, w) {
			t.Errorf("the event history page lacks the activity summary %q", w)
		}
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	j := strings.Index(s, end)
	if j < 0 {
		return ""
	}
	return s[:j]
}

// TestWebUIWritesNothing: anything on the machine reaches dev's Web UI,
// task code included (it shares the host's network), and the UI reaches
// Temporal with dev's certificate. So the UI takes no write action: a
// cancel, terminate or signal through it is refused and the task goes on;
// cancelling stays the API's (issue 20: only the API cancels a task).
func TestWebUIWritesNothing(t *testing.T) {
	t.Parallel()
	if shared.ui == "" {
		t.Fatal("no Web UI address in the banner")
	}
	tk := shared.create(t, reviewBody(t, "ui-write", "ui-write", 1, map[string]any{"approval": "required"}))
	waitWaiting(t, shared, tk.ID)
	for _, path := range []string{"/cancel", "/terminate", "/signal/" + task.SignalDecision} {
		url := shared.ui + "/api/v1/namespaces/default/workflows/" + tk.ID + path
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"reason":"from task code"}`))
		req.Header.Set("Content-Type", "application/json")
		// Any Authorization header skips the UI's CSRF check: what a
		// process on the machine sends, not a browser.
		req.Header.Set("Authorization", "Bearer anything")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Errorf("POST %s through dev's Web UI: %d", path, resp.StatusCode)
		}
	}
	if got := shared.get(t, tk.ID); got.Status != "waiting_approval" {
		t.Fatalf("after the UI's refused writes the task is %s", got.Status)
	}
	if r := shared.call(t, http.MethodPut, "/api/v1/tasks/"+tk.ID+"/cancel", shared.key, nil); r.code != 200 {
		t.Fatalf("cancel through the API: %d %s", r.code, r.body)
	}
}
