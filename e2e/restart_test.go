package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRestartMidApplyLosesNothing SIGKILLs `terratask dev` while a task is
// applying, starts it again on the same data dir, and checks the task
// finishes on its own with no log entry lost or doubled.
func TestRestartMidApplyLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := startDev(dir, "restart-key")
	if err != nil {
		t.Fatal(err)
	}
	tk := p.create(t, map[string]any{
		"name": "restart", "agent_id": "agent-e2e", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 2},
	})
	// Kill once the first resource is done and the second is under way.
	p.waitStatus(t, tk.ID, 2*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("task ended before the kill: %+v", s)
		}
		return s.Metadata.CurrentStep == "applying" && s.Metadata.ChangesDone >= 1
	})
	p.kill()

	p2, err := startDev(dir, "restart-key")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p2.stop(); err != nil {
			t.Error(err)
		}
	}()
	seen := p2.waitStatus(t, tk.ID, 3*time.Minute, terminal)
	last := seen[len(seen)-1]
	if last.Status != "completed" || last.Progress != 100 {
		t.Fatalf("after restart the task ended %+v\n%v", last, p2.logs(t, tk.ID, "?level=warn,error"))
	}
	if got := p2.get(t, tk.ID); fmt.Sprint(got.Result.Output["steps"]) != "4" {
		t.Fatalf("outputs %v", got.Result.Output)
	}

	logs := p2.logs(t, tk.ID, "?limit=10000")
	checkNoLineDoubledOrLost(t, logs)
	// No lost lines: every step's start and done echo of the first attempt
	// that ran before the kill is present, and each step completed at least
	// once across both attempts.
	text := make([]string, 0, len(logs))
	for _, l := range logs {
		text = append(text, l.Message)
	}
	all := strings.Join(text, "\n")
	for i := 0; i < 4; i++ {
		if !strings.Contains(all, fmt.Sprintf("step %d done", i)) {
			t.Fatalf("no 'step %d done' in logs:\n%s", i, all)
		}
	}
	if !strings.Contains(all, "step 0 starting") {
		t.Fatalf("first attempt's lines lost:\n%s", all)
	}
	checkLogsOrdered(t, logs)
}
