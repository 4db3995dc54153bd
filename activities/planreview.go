package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Every plan a task makes is kept for review: its JSON form (`terraform
// show -json`) reduced to an api.Plan, and its text form (`terraform show`),
// both with every sensitive value replaced by "(sensitive)" and the task's
// own secrets masked. Terraform's full JSON (variables, prior state,
// configuration) never leaves the host. A plan that waits for approval also
// keeps its plan file in the store, sealed with the secret key, so that any
// host of the runner can apply exactly that plan.

// reviewPlan stores the work dir's saved plan for review and fills out's
// summary and digest. For a plan the task's approval makes wait, it stores
// the plan file too. A task with an approval mode keeps Terraform's own
// rendering of the plan for its reviewer; any other plan's text is rendered
// from its JSON form when asked for (api.PlanText).
func (s *stepRun) reviewPlan(ctx context.Context, tf *tfexec.Terraform, out *PlanOutput) error {
	p := s.paths
	raw, err := os.ReadFile(p.planFile)
	if err != nil {
		return transientError("reading the saved plan", err)
	}
	out.Digest = digestOf(raw)
	params := s.in.Task.Params
	withText := params.EffectiveApproval() != task.ApprovalNone && params.EffectiveAction() != task.ActionPlan
	doc, plan, err := s.showPlan(ctx, tf, p.planFile, out.Digest, withText, s.in.PolicyPlan)
	if params.DetectDrift && plan != nil {
		// Even when the review could not be stored: the plan was read.
		out.Drift = s.driftFinding(plan) // drift.go
	}
	if err != nil {
		return err
	}
	out.Summary = doc.Summary
	// A policy may make a plan with changes wait whatever the task's mode
	// (its post_plan check runs after this step).
	byPolicy := (s.in.PolicyPlan || s.in.PolicyApproval) && (doc.Summary.HasChanges() || doc.Summary.Outputs > 0)
	if params.EffectiveAction() == task.ActionPlan || (!byPolicy && !params.EffectiveApproval().Waits(doc.Summary)) {
		s.book.runner(task.LevelInfo, "plan %s kept for review", short(out.Digest))
		return nil
	}
	if s.r.Secrets == nil {
		return configErrorf("this plan waits for approval, but this runner has no secret key to keep it sealed")
	}
	org := orgOf(s.in.Task)
	sealed, err := s.r.Secrets.SealBytes(raw, planFileContext(org, s.in.Task.ID, out.Digest))
	if err != nil {
		return transientError("sealing the plan file", err)
	}
	if err := s.r.Plans.PutPlanFile(ctx, store.PlanFile{TaskID: s.in.Task.ID, Org: org, Digest: out.Digest, Data: sealed}); err != nil {
		return transientError("storing the sealed plan file", err)
	}
	out.Sealed = true
	s.book.runner(task.LevelInfo, "plan %s kept for review, and sealed in the store for its apply", short(out.Digest))
	return nil
}

// showPlan stores the plan file planFile (whose SHA-256 is digest) for
// review: its JSON form, reduced and masked, and with withText Terraform's
// text form too. With forPolicy it also keeps Terraform's whole JSON,
// masked and sealed with the org's key, for the post_plan policy check. It
// returns the reduced plan and Terraform's JSON form.
func (s *stepRun) showPlan(ctx context.Context, tf *tfexec.Terraform, planFile, digest string, withText, forPolicy bool) (api.Plan, *tfjson.Plan, error) {
	// Neither form goes to the log: the JSON holds every value in plain
	// text (PlanJSON left the log as the handle's stdout). The policy
	// check reads Terraform's own bytes, not a re-encoding of them.
	var raw bytes.Buffer
	if forPolicy {
		tf.SetStdout(&raw)
	} else {
		tf.SetStdout(io.Discard)
	}
	// Both forms at once: each is a Terraform process of its own (about
	// 0.1 s on a small configuration), and both only read the plan. The
	// handle has one stdout, so with forPolicy the text form follows.
	type shown struct {
		text string
		err  error
	}
	textDone := make(chan shown, 1)
	showText := func() {
		text, err := tf.ShowPlanFileRaw(ctx, planFile)
		textDone <- shown{text, err}
	}
	switch {
	case !withText:
		textDone <- shown{}
	case !forPolicy:
		go showText()
	}
	start := time.Now()
	plan, err := tf.ShowPlanFile(ctx, planFile, tfexec.JSONNumber(true))
	observeCommand(ctx, "show", start, err)
	if withText && forPolicy {
		tf.SetStdout(io.Discard)
		showText()
	}
	txt := <-textDone
	// Both shows are done: the handle's later commands write nowhere.
	tf.SetStdout(io.Discard)
	for _, e := range []struct {
		cmd string
		err error
	}{{"show -json", err}, {"show", txt.err}} {
		if e.err == nil {
			continue
		}
		if ctx.Err() != nil {
			return api.Plan{}, nil, ctx.Err()
		}
		return api.Plan{}, nil, terraformError(task.CodeTerraform, e.cmd, e.err, nil)
	}
	doc := reviewOf(plan, s.masker)
	doc.TaskID, doc.CreatedAt = s.in.Task.ID, api.Time(time.Now())
	body, err := json.Marshal(doc)
	if err != nil {
		return doc, plan, internalErrorf("encoding the plan for review: %v", err)
	}
	if s.r.Plans == nil {
		return doc, plan, internalErrorf("this runner keeps no plans (it has no store for them)")
	}
	text := ""
	if withText {
		text = maskPlanText(txt.text, s.masker)
	}
	var sealed []byte
	if forPolicy {
		if sealed, err = s.sealPolicyInput(raw.Bytes(), digest); err != nil {
			return doc, plan, err
		}
	}
	if err := s.r.Plans.PutPlan(ctx, store.Plan{TaskID: s.in.Task.ID, Org: orgOf(s.in.Task), Summary: doc.Summary,
		JSON: body, Text: text, Digest: digest, PolicyInput: sealed}); err != nil {
		return doc, plan, transientError("storing the plan for review", err)
	}
	return doc, plan, nil
}

// planFileContext binds a sealed plan file to its task and content: it
// opens only as that task's plan with that digest.
func planFileContext(org, taskID, digest string) []byte {
	return []byte("terratask plan file\x00" + org + "\x00" + taskID + "\x00" + digest)
}

// orgOf is the task's org as stored.
func orgOf(in task.Input) string {
	org, _ := stateWorkspace(in)
	return org
}

// maskPlanText masks Terraform's rendering of a plan: its own marker of a
// sensitive value reads "(sensitive)" as in the JSON form, and the task's
// secrets are masked.
func maskPlanText(text string, m *secret.Masker) string {
	return m.String(strings.ReplaceAll(text, "(sensitive value)", api.SensitiveValue))
}

// reviewOf reduces Terraform's JSON plan to its review form, masked.
func reviewOf(p *tfjson.Plan, m *secret.Masker) api.Plan {
	doc := api.Plan{
		TerraformVersion: p.TerraformVersion,
		ResourceChanges:  []api.ResourceChange{},
		OutputChanges:    map[string]api.OutputChange{},
		ResourceDrift:    []api.ResourceChange{},
	}
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Change == nil {
			continue
		}
		c := resourceChangeOf(rc, m)
		doc.ResourceChanges = append(doc.ResourceChanges, c)
		countChange(&doc.Summary, rc)
	}
	for _, rc := range p.ResourceDrift {
		if rc == nil || rc.Change == nil {
			continue
		}
		doc.ResourceDrift = append(doc.ResourceDrift, resourceChangeOf(rc, m))
	}
	names := make([]string, 0, len(p.OutputChanges))
	for name := range p.OutputChanges {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := p.OutputChanges[name]
		if c == nil {
			continue
		}
		sensitive := isTrue(c.BeforeSensitive) || isTrue(c.AfterSensitive)
		oc := api.OutputChange{
			Actions:   actionsOf(c.Actions),
			Before:    maskDeep(hideSensitive(c.Before, c.BeforeSensitive), m),
			After:     maskDeep(hideSensitive(markUnknown(c.After, c.AfterUnknown), c.AfterSensitive), m),
			Sensitive: sensitive,
		}
		if !c.Actions.NoOp() {
			doc.Summary.Outputs++
		}
		doc.OutputChanges[m.String(name)] = oc
	}
	return doc
}

// resourceChangeOf is one resource change, masked.
func resourceChangeOf(rc *tfjson.ResourceChange, m *secret.Masker) api.ResourceChange {
	c := rc.Change
	return api.ResourceChange{
		Address:       m.String(rc.Address),
		ModuleAddress: m.String(rc.ModuleAddress),
		Mode:          string(rc.Mode),
		Type:          rc.Type,
		Name:          rc.Name,
		Index:         maskDeep(rc.Index, m),
		ProviderName:  rc.ProviderName,
		Actions:       actionsOf(c.Actions),
		ActionReason:  string(rc.ActionReason),
		Before:        maskDeep(hideSensitive(c.Before, c.BeforeSensitive), m),
		After:         maskDeep(hideSensitive(markUnknown(c.After, c.AfterUnknown), c.AfterSensitive), m),
		Importing:     c.Importing != nil,
	}
}

// countChange adds a resource change to the summary as Terraform counts it:
// a replace is one add and one destroy, and also one replace.
func countChange(s *task.PlanSummary, rc *tfjson.ResourceChange) {
	a := rc.Change.Actions
	switch {
	case a.Replace():
		s.Replace++
		s.Add++
		s.Destroy++
	case a.Create():
		s.Add++
	case a.Delete():
		s.Destroy++
	case a.Update(), a.Forget(), a.NoOp() && rc.Change.Importing != nil:
		s.Change++
	}
}

func actionsOf(a tfjson.Actions) []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = string(x)
	}
	return out
}

func isTrue(v any) bool {
	b, ok := v.(bool)
	return ok && b
}

// hideSensitive replaces the parts of v that sensitive marks: true marks
// the whole value, an object or array of markers marks its members. A null
// value stays null.
func hideSensitive(v, sensitive any) any {
	switch s := sensitive.(type) {
	case bool:
		if s && v != nil {
			return api.SensitiveValue
		}
	case map[string]any:
		if obj, ok := v.(map[string]any); ok {
			for k, sk := range s {
				if val, has := obj[k]; has {
					obj[k] = hideSensitive(val, sk)
				}
			}
		}
	case []any:
		if arr, ok := v.([]any); ok {
			for i := range arr {
				if i < len(s) {
					arr[i] = hideSensitive(arr[i], s[i])
				}
			}
		}
	}
	return v
}

// markUnknown fills in "(known after apply)" where unknown marks a value
// that Terraform leaves out of the plan until apply.
func markUnknown(v, unknown any) any {
	switch u := unknown.(type) {
	case bool:
		if u {
			return api.UnknownValue
		}
	case map[string]any:
		obj, ok := v.(map[string]any)
		if !ok {
			if v != nil {
				return v
			}
			obj = map[string]any{}
		}
		for k, uk := range u {
			if got := markUnknown(obj[k], uk); got != nil {
				obj[k] = got
			}
		}
		if len(obj) == 0 && v == nil {
			return nil
		}
		return obj
	case []any:
		arr, ok := v.([]any)
		if !ok && v != nil {
			return v
		}
		for len(arr) < len(u) {
			arr = append(arr, nil)
		}
		for i := range u {
			arr[i] = markUnknown(arr[i], u[i])
		}
		if len(arr) == 0 && v == nil {
			return nil
		}
		return arr
	}
	return v
}

// maskDeep masks the task's secrets in every string, number and object key
// of v.
func maskDeep(v any, m *secret.Masker) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[m.String(k)] = maskDeep(val, m)
		}
		return out
	case []any:
		for i := range x {
			x[i] = maskDeep(x[i], m)
		}
		return x
	case float64:
		s := fmt.Sprint(x)
		if m.String(s) != s {
			return secret.Mask
		}
		return x
	}
	return maskValue(v, m)
}
