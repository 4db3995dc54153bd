package workflows

import (
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/task"
)

// driftOutcome takes a drift check's finding into the task's result. When
// the plan drifted and the task asks remediate "approval", it names the
// apply task to start (same template, action apply, approval required); the
// task's final transition carries its input and the control plane starts it
// (controlplane.Control.Record), so the workflow runs no command for it.
func (r *run) driftOutcome(ctx workflow.Context, d *task.Drift) *task.Drift {
	if d == nil {
		return nil
	}
	if rem := remediationInput(r.in, d, workflow.Now(ctx).UTC()); rem != nil {
		d.RemediationTaskID = rem.ID
		r.remediation = rem
	}
	return d
}

// finalRemediation is the remediation to start, on the completed
// transition only.
func (r *run) finalRemediation() *task.Input {
	if r.state.Status != task.StatusCompleted {
		return nil
	}
	return r.remediation
}

// remediationInput is the apply task that remediates drift: the drift
// task's template as an apply that waits for approval, on the same
// workspace (so it runs after the drift task, in order), its ID derived
// from the drift task's.
func remediationInput(in task.Input, d *task.Drift, now time.Time) *task.Input {
	if !d.Drifted || in.Params.Remediate != task.RemediateApproval {
		return nil
	}
	out := in
	out.ID = in.ID + "-remediation"
	out.Name = truncateUTF8("remediate drift: "+in.Name, 256)
	out.CreatedAt = now
	out.ScheduleID = ""
	out.Params.Action = task.ActionApply
	out.Params.Approval = task.ApprovalRequired
	out.Params.DetectDrift, out.Params.Remediate = false, ""
	out.Metadata = map[string]any{}
	for k, v := range in.Metadata {
		if k != "schedule_id" {
			out.Metadata[k] = v
		}
	}
	out.Metadata["remediates"] = in.ID
	return &out
}

// truncateUTF8 cuts s to at most n bytes (the API's limit on a name) without
// splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
