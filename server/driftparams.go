package server

import (
	"encoding/json"

	"github.com/terratask/terratask/task"
)

// parseDriftParam reads detect_drift or remediate.
func parseDriftParam(k string, v json.RawMessage, p *task.Params) error {
	switch k {
	case "detect_drift":
		if json.Unmarshal(v, &p.DetectDrift) != nil {
			return errField("parameters.detect_drift", "must be a boolean")
		}
	case "remediate":
		if json.Unmarshal(v, &p.Remediate) != nil || p.Remediate != task.RemediateApproval {
			return errField("parameters.remediate", "must be \"approval\": an apply task that waits for approval starts when drift is found")
		}
	}
	return nil
}

// checkDriftParams checks that detect_drift is asked of a plan-only task of
// a named workspace (a task's own workspace has no state to drift from),
// and remediate only with detect_drift.
func checkDriftParams(p *task.Params) error {
	switch {
	case p.Remediate != "" && !p.DetectDrift:
		return errField("parameters.remediate", "needs \"detect_drift\": true")
	case !p.DetectDrift:
		return nil
	case p.EffectiveAction() != task.ActionPlan:
		return errField("parameters.detect_drift", "needs \"action\": \"plan\": a drift check never applies")
	case p.Workspace == "":
		return errField("parameters.workspace", "a drift check needs the workspace whose state it compares with the real world")
	case p.RefreshOnly:
		return errField("parameters.refresh_only", "a drift check plans against the configuration too; drop refresh_only")
	}
	return nil
}
