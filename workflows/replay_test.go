package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/terratask/terratask/codec/control"
	"github.com/terratask/terratask/secret"
)

// ReplayKeyFile holds the secret key of the encrypted recorded histories.
const ReplayKeyFile = "testdata/replay-secret.key"

// replayCodec is the control plane's codec of the test key: it reads the
// histories under the key itself and those under its orgs' keys.
func replayCodec(t *testing.T) *control.Codec {
	t.Helper()
	keys, err := secret.ReadKeysFile(ReplayKeyFile)
	if err != nil || len(keys) != 1 {
		t.Fatalf("%s: %v", ReplayKeyFile, err)
	}
	c, err := control.New(keys[0])
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
	// Every recorded history is in the manifest and every manifest entry
	// is recorded: a deleted history fails here, not silently.
	have := map[string]bool{}
	for _, f := range files {
		have[filepath.Base(f)] = true
		if _, ok := replayManifest[filepath.Base(f)]; !ok {
			t.Errorf("%s is not in replayManifest: say what it covers", f)
		}
	}
	for name := range replayManifest {
		if !have[name] {
			t.Errorf("replayManifest lists %s, which testdata lacks", name)
		}
	}
	cdc := replayCodec(t)
	driftUsed := map[int]bool{}
	defer func() {
		for i, k := range knownDrift {
			if !driftUsed[i] && !t.Failed() {
				t.Errorf("knownDrift entry %q (%s) explains no difference any more: remove it", k.diff, k.prefix)
			}
		}
	}()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rec := &commandRecorder{}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
				Interceptors: []interceptor.WorkerInterceptor{rec},
			})
			if err != nil {
				t.Fatal(err)
			}
			Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replaying %s: %v", f, err)
			}
			// What the replayer does not compare: activity options and
			// timer durations (commands_test.go).
			diffs, err := checkCommands(f, rec.got)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range unexplained(filepath.Base(f), diffs, driftUsed) {
				t.Errorf("%s (version the change with workflow.GetVersion, or, if it is harmless, say why in knownDrift)", d)
			}
		})
	}
}

// replayManifest is every recorded history of the task workflow
// (terratask.Task) and what it covers: v1 before approval, v1-encrypted with
// the payload codec, v2 the approval and drift-schedule versions, v3 the
// claim-install command sequence, v4 the host-lease version, v5 the
// decision-proof version, v6 the org-runners version, v7 the policy version (the current one). A
// recorded file must be listed, and a listed file recorded (e2e/record_test.go
// records them).
var replayManifest = map[string]string{
	"v1-cancelled-in-queue.json":  "v1: cancelled while waiting for its workspace",
	"v1-cancelled.json":           "v1: cancelled mid-apply",
	"v1-completed.json":           "v1: completed apply",
	"v1-failed.json":              "v1: failed (a broken configuration)",
	"v1-plan.json":                "v1: plan-only task",
	"v1-queued.json":              "v1: queued on its workspace",
	"v1-runner-unavailable.json":  "v1: no runner within runner-wait",
	"v1-timeout.json":             "v1: timed out mid-apply",
	"v1-workspace-queue.json":     "v1: the workspace queue",
	"v1-encrypted-cancelled.json": "v1, encrypted payloads: cancelled",
	"v1-encrypted-completed.json": "v1, encrypted payloads: completed",
	"v1-encrypted-failed.json":    "v1, encrypted payloads: failed",
	"v1-encrypted-plan.json":      "v1, encrypted payloads: plan-only",
	"v2-approval-timeout.json":    "v2: approval timed out (rejected)",
	"v2-approved-by-parent.json":  "v2: approved by a parent workflow's signal",
	"v2-approved.json":            "v2: approved through the API",
	"v2-cancelled-waiting.json":   "v2: cancelled while waiting for approval",
	"v2-rejected.json":            "v2: rejected",
	"v2-scheduled-drift.json":     "v2: a schedule's drift check",
	"v3-approved.json":            "v3 (claim-install): approved",
	"v3-cancelled.json":           "v3 (claim-install): cancelled mid-apply",
	"v3-completed.json":           "v3 (claim-install): completed",
	"v3-failed.json":              "v3 (claim-install): failed",
	"v3-plan.json":                "v3 (claim-install): plan-only",
	"v3-rejected.json":            "v3 (claim-install): rejected",
	"v3-scheduled-drift.json":     "v3 (claim-install): a schedule's drift check",
	"v4-approved.json":            "v4 (lease): approved",
	"v4-cancelled.json":           "v4 (lease): cancelled mid-apply",
	"v4-completed.json":           "v4 (lease): completed",
	"v4-failed.json":              "v4 (lease): failed",
	"v4-plan.json":                "v4 (lease): plan-only",
	"v4-host-lost.json": "v4 (lease): the applying host frozen (SIGSTOP): the apply's heartbeat timeout is not retried, " +
		"the block restarts on the runner's other host, whose claim avoids the frozen one (attempt 3: the frozen host's open polls took two)",
	"v4-workspace-queue.json":    "v4 (lease): a task that waited for its shared workspace fails; it releases the workspace before the cleanup",
	"v5-approved.json":           "v5 (decision-proof): approved through the API (an update with a proof)",
	"v5-approved-by-parent.json": "v5 (decision-proof): a parent workflow approves its child by a signed signal (the proof check a side effect)",
	"v5-forged-signal.json":      "v5 (decision-proof): an unsigned decision signal is ignored (side effect false), then the API approves",
	"v5-cancelled.json":          "v5 (decision-proof): cancelled mid-apply",
	"v5-completed.json":          "v5 (decision-proof): completed",
	"v5-failed.json":             "v5 (decision-proof): failed",
	"v5-plan.json":               "v5 (decision-proof): plan-only",
	"v7-completed.json":          "v7 (policy): completed under a policy that reads plans: a pre_plan and a post_plan check, both allow",
	"v7-plan.json":               "v7 (policy): plan-only, both checks",
	"v7-failed.json":             "v7 (policy): a broken configuration fails at the plan, after the pre_plan check",
	"v7-denied-pre.json":         "v7 (policy): denied by the pre_plan check: no workspace, no claim, no engine",
	"v7-denied-post.json":        "v7 (policy): denied by the post_plan check: planned, nothing applied",
	"v7-approved-by-policy.json": "v7 (policy): approval none, but a policy requires approval: waits, approved through the API, applies the saved plan",
	"v7-warned.json":             "v7 (policy): a warning recorded, completed",
	"v7-policy-error.json":       "v7 (policy): an evaluation error fails the task closed (policy_error) before anything runs",
	"v6-approval-timeout.json":   "v6 (org-runners): approval timed out (rejected)",
	"v6-approved-by-parent.json": "v6 (org-runners): a parent workflow approves its child by a signed signal (the approval request under the org's key)",
	"v6-approved.json":           "v6 (org-runners): approved through the API",
	"v6-cancelled-waiting.json":  "v6 (org-runners): cancelled while waiting for approval",
	"v6-cancelled.json":          "v6 (org-runners): cancelled mid-apply",
	"v6-completed.json":          "v6 (org-runners): completed; the claim on the org's runner queue, every payload under the org's key",
	"v6-failed.json":             "v6 (org-runners): failed",
	"v6-host-lost.json":          "v6 (org-runners): the applying host of a two-host runner (runner API, org key) frozen; the block restarts on the other",
	"v6-plain-input.json":        "v6 (org-runners): a task input that is not encrypted fails with configuration_error before any runner is asked",
	"v6-plan.json":               "v6 (org-runners): plan-only",
	"v6-rejected.json":           "v6 (org-runners): rejected",
	"v6-runner-unavailable.json": "v6 (org-runners): no runner of the org serves the task's runner within its runner_timeout",
	"v6-scheduled-drift.json":    "v6 (org-runners): a schedule's drift check",
	"v6-timeout.json":            "v6 (org-runners): timed out mid-apply",
	"v6-workspace-queue.json":    "v6 (org-runners): a task that waited for its shared workspace fails; it releases the workspace before the cleanup",
	// The other registered workflows, recorded open (they wait for more).
	"vd1-delivered-after-retry.json": "the delivery workflow (terratask.Delivery): a task's seven events to a webhook whose receiver refuses each first attempt: each Deliver activity succeeds on its second attempt, in order",
	"vq1-two-tasks.json":             "the workspace queue (terratask.WorkspaceQueue): two tasks of one workspace granted one after the other",
}
