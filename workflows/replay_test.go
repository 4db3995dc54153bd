package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs of
// `terratask dev` (completed, failed, plan-only, cancelled mid-apply, timed
// out, runner unavailable). A change to the workflow's command sequence that
// is not guarded by workflow.GetVersion fails here: record new histories for
// the new version and keep the old ones.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/v*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("expected the recorded histories in testdata, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replaying %s: %v", f, err)
			}
		})
	}
}
