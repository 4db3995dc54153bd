package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/secret"
)

// ReplayKeyFile holds the secret key of the encrypted recorded histories.
const ReplayKeyFile = "testdata/replay-secret.key"

func replayCodec(t *testing.T) *codec.Codec {
	t.Helper()
	keys, err := secret.ReadKeysFile(ReplayKeyFile)
	if err != nil || len(keys) != 1 {
		t.Fatalf("%s: %v", ReplayKeyFile, err)
	}
	c, err := codec.New(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReplayRecordedHistories replays histories recorded from real runs of
// `terratask dev` (completed, failed, plan-only, cancelled mid-apply, timed
// out, runner unavailable), with the payload codec every worker uses: the
// histories recorded before encryption hold plain payloads, which it passes
// through, and those recorded since are encrypted under the test key in
// testdata/replay-secret.key. A change to the workflow's command sequence that
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
	cdc := replayCodec(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
			})
			if err != nil {
				t.Fatal(err)
			}
			Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replaying %s: %v", f, err)
			}
		})
	}
}
