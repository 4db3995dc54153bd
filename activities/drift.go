package activities

import (
	"encoding/json"
	"reflect"
	"sort"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// Drift detection (detect_drift on a plan-only task). The plan's refresh
// compares the state with the real world; Terraform's JSON plan (`terraform
// show -json` of the saved plan, which plan review reads anyway: see
// reviewPlan) lists what moved outside Terraform since the last apply
// (resource_drift) and what the plan would change to match the
// configuration (resource_changes). Both go into the task's result as
// task.Drift: addresses, actions and the names of the attributes that
// differ, never their values (they may be sensitive).

// driftFinding reduces the saved plan's JSON form to its drift and logs
// the finding.
func (s *stepRun) driftFinding(plan *tfjson.Plan) *task.Drift {
	d := driftOf(plan, s.masker)
	if d.Drifted {
		s.book.runner(task.LevelWarn, "drift detected: %d resource change(s) outside Terraform or against the configuration", len(d.Resources))
	} else {
		s.book.runner(task.LevelInfo, "no drift: the real world matches the state and the configuration")
	}
	return d
}

// driftOf reduces a JSON plan to its drift: every resource_drift entry
// (source "drift") and every planned change of a managed resource that
// does something (source "plan"); no-ops and data source reads are not
// drift.
func driftOf(p *tfjson.Plan, m *secret.Masker) *task.Drift {
	d := &task.Drift{Resources: []task.DriftResource{}}
	add := func(rc *tfjson.ResourceChange, source string) {
		if rc == nil || rc.Change == nil || rc.Mode == tfjson.DataResourceMode {
			return
		}
		a := rc.Change.Actions
		if a.NoOp() || a.Read() || len(a) == 0 {
			return
		}
		actions := make([]string, len(a))
		for i, x := range a {
			actions[i] = string(x)
		}
		d.Resources = append(d.Resources, task.DriftResource{
			Address: m.String(rc.Address), Actions: actions, Source: source,
			ChangedAttributes: changedAttributes(rc.Change),
		})
	}
	for _, rc := range p.ResourceDrift {
		add(rc, "drift")
	}
	for _, rc := range p.ResourceChanges {
		add(rc, "plan")
	}
	d.Drifted = len(d.Resources) > 0
	return d
}

// changedAttributes names the top-level attributes an update changes (the
// values differ, or the new one is known only after apply). A create or a
// delete changes the whole object: no names.
func changedAttributes(c *tfjson.Change) []string {
	out := []string{}
	before, okB := c.Before.(map[string]any)
	after, okA := c.After.(map[string]any)
	if !okB || !okA {
		return out
	}
	unknown, _ := c.AfterUnknown.(map[string]any)
	seen := map[string]bool{}
	for _, attrs := range []map[string]any{before, after, unknown} {
		for k := range attrs {
			if seen[k] {
				continue
			}
			seen[k] = true
			if isUnknown(unknown[k]) || !sameJSON(before[k], after[k]) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// isUnknown reports whether an after_unknown entry marks a value (or any
// part of it) unknown.
func isUnknown(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case map[string]any:
		for _, e := range x {
			if isUnknown(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if isUnknown(e) {
				return true
			}
		}
	}
	return false
}

// sameJSON compares two decoded JSON values (numbers as json.Number).
func sameJSON(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
