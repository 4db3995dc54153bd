package activities

import (
	"bytes"
	"encoding/json"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// The post_plan policy check (package policy, on the control plane) reads
// Terraform's JSON plan as `terraform show -json` prints it, so that a
// policy written for conftest or Atlantis runs unchanged. The runner that
// planned keeps it for the check: every value Terraform marks sensitive
// replaced by "(sensitive)" (resource changes and drift, planned values,
// prior state, outputs, sensitive variables' declared defaults), the
// task's sensitive variables' values replaced by "(sensitive)", and any of
// the task's secret values left anywhere masked, then sealed with the org's
// key bound to the task and plan (task.PolicyInputContext). The structure
// is Terraform's; only values change.

// sealPolicyInput masks Terraform's JSON plan raw and seals it.
func (s *stepRun) sealPolicyInput(raw []byte, digest string) ([]byte, error) {
	masked, err := maskPlanJSON(raw, s.secrets, s.masker)
	if err != nil {
		return nil, terraformError(task.CodeTerraform, "show -json", err, nil)
	}
	if s.r.Secrets == nil {
		return nil, configErrorf("this org has policies that read plans, but this runner has no org key to seal the plan's JSON with")
	}
	org := orgOf(s.in.Task)
	sealed, err := s.r.Secrets.SealBytes(masked, task.PolicyInputContext(org, s.in.Task.ID, digest))
	if err != nil {
		return nil, transientError("sealing the plan's JSON", err)
	}
	return sealed, nil
}

// maskPlanJSON masks Terraform's JSON plan (see above).
func maskPlanJSON(raw []byte, secrets task.Secrets, m *secret.Masker) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	for _, key := range []string{"resource_changes", "resource_drift"} {
		for _, rc := range objects(doc[key]) {
			maskChange(obj(rc["change"]))
		}
	}
	for _, oc := range obj(doc["output_changes"]) {
		maskChange(obj(oc))
	}
	for _, key := range []string{"planned_values", "prior_state"} {
		vals := obj(doc[key])
		if key == "prior_state" {
			vals = obj(vals["values"])
		}
		maskValues(vals)
	}
	for name, v := range obj(doc["variables"]) {
		if _, ok := secrets.SensitiveVariables[name]; ok {
			if o := obj(v); o != nil {
				o["value"] = api.SensitiveValue
			}
		}
	}
	maskConfigModule(obj(obj(doc["configuration"])["root_module"]))
	out := maskValue(maskKeys(doc, m), m)
	return json.Marshal(out)
}

// maskChange masks a change's before and after by its sensitivity marks.
func maskChange(c map[string]any) {
	if c == nil {
		return
	}
	c["before"] = hideSensitive(c["before"], c["before_sensitive"])
	c["after"] = hideSensitive(c["after"], c["after_sensitive"])
}

// maskValues masks a values representation (planned_values, prior
// state's values): each resource's values by its sensitive_values, each
// sensitive output, every child module.
func maskValues(v map[string]any) {
	if v == nil {
		return
	}
	for _, o := range obj(v["outputs"]) {
		if out := obj(o); out != nil && isTrue(out["sensitive"]) && out["value"] != nil {
			out["value"] = api.SensitiveValue
		}
	}
	var module func(m map[string]any)
	module = func(m map[string]any) {
		if m == nil {
			return
		}
		for _, r := range objects(m["resources"]) {
			r["values"] = hideSensitive(r["values"], r["sensitive_values"])
		}
		for _, c := range objects(m["child_modules"]) {
			module(c)
		}
	}
	module(obj(v["root_module"]))
}

// maskConfigModule masks the declared defaults of sensitive variables in
// the configuration, in every module call.
func maskConfigModule(m map[string]any) {
	if m == nil {
		return
	}
	for _, v := range obj(m["variables"]) {
		if o := obj(v); o != nil && isTrue(o["sensitive"]) && o["default"] != nil {
			o["default"] = api.SensitiveValue
		}
	}
	for _, call := range obj(m["module_calls"]) {
		maskConfigModule(obj(obj(call)["module"]))
	}
}

// maskKeys masks the task's secrets in object keys (values are masked by
// maskValue).
func maskKeys(v any, m *secret.Masker) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[m.String(k)] = maskKeys(val, m)
		}
		return out
	case []any:
		for i := range x {
			x[i] = maskKeys(x[i], m)
		}
	}
	return v
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func objects(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, x := range arr {
		if m := obj(x); m != nil {
			out = append(out, m)
		}
	}
	return out
}
