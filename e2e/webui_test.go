package e2e

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
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
// in frames whose content is in their URL).
func renderedPage(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=30000", "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", url, err)
	}
	return string(out) + "\n" + urlUnescape(string(out))
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
// (dev's own UI may call it from loopback without a key): its pages show the
// decoded input, the task's static summary (name and agent) and details, and
// each step's activity summary.
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
	var dom string
	// The UI loads asynchronously; a loaded machine may need a second look.
	for attempt := 0; attempt < 3; attempt++ {
		dom = renderedPage(t, browser, base)
		if strings.Contains(dom, "ui-task-"+m) {
			break
		}
	}
	// The workflow's input, decoded by the codec, is on the main page.
	if !strings.Contains(dom, "ui-task-"+m) {
		t.Fatalf("the Web UI page of %s does not show the decoded input (task name)", tk.ID)
	}
	runID := between(dom, "/namespaces/default/workflows/"+tk.ID+"/", "/")
	if runID == "" {
		t.Fatalf("no run ID on the page")
	}
	meta := ""
	for attempt := 0; attempt < 3; attempt++ {
		meta = renderedPage(t, browser, base+"/"+runID+"/user-metadata")
		if strings.Contains(meta, "ui-task-"+m+" (agent agent-ui)") {
			break
		}
	}
	for _, want := range []string{"ui-task-" + m + " (agent agent-ui)", "runner: `local`"} {
		if !strings.Contains(meta, want) {
			t.Errorf("the user metadata page lacks %q", want)
		}
	}
	// The event history names each step's activity by its summary; the
	// apply's carries the plan's counts (the fixture adds 3 resources).
	want := []string{"terraform init", "terraform plan", "terraform apply: 3 to add, 0 to change, 0 to destroy", "claim a host of runner local"}
	history := ""
	for attempt := 0; attempt < 3; attempt++ {
		history = renderedPage(t, browser, base+"/"+runID+"/history")
		if strings.Contains(history, want[2]) {
			break
		}
	}
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
