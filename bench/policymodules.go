package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/terratask/terratask/policy"
)

// The policy rows' set: the example policies of deployments/policies and
// 16 generated modules in their style (each its own package; deny,
// require_approval and warn rules that walk the plan's resource_changes,
// configuration and outputs, check tags, count actions and build messages
// with sprintf). Eight templates, each with two sets of parameters. On the
// benchmark's plans (terraform_data resources created) none denies or asks
// for approval: on the 50-resource plan two warn (more creations than
// bench_change_limits_a expects, more values known only after apply than
// bench_planned_size_a), on the one-resource plan none does.

// policyTemplate is a generated module: @@NAME@@ and @@Pn@@ are replaced.
type policyTemplate struct {
	name   string
	text   string
	params [2][]string
}

var policyTemplates = []policyTemplate{
	{
		name: "types_providers",
		text: `# @@NAME@@: no plan creates or updates a resource of a denied type, and every
# resource comes from an allowed provider.
package terratask.bench.@@NAME@@

denied_types := {@@P1@@}

allowed_provider_prefixes := [@@P2@@]

deny contains msg if {
	some rc in input.resource_changes
	rc.mode == "managed"
	rc.type in denied_types
	some action in rc.change.actions
	action in {"create", "update"}
	msg := sprintf("%s: resource type %s may not be %sd by a task", [rc.address, rc.type, action])
}

allowed_provider(name) if {
	some prefix in allowed_provider_prefixes
	startswith(name, prefix)
}

deny contains msg if {
	some rc in input.resource_changes
	not allowed_provider(rc.provider_name)
	msg := sprintf("%s: provider %s is not on the allow list (%s)", [rc.address, rc.provider_name, concat(", ", allowed_provider_prefixes)])
}

warn contains msg if {
	some key, pc in input.configuration.provider_config
	not startswith(pc.full_name, "terraform.io/builtin/")
	not pc.version_constraint
	msg := sprintf("provider %s (%s) has no version constraint", [key, pc.full_name])
}
`,
		params: [2][]string{
			{`"aws_iam_user", "aws_iam_access_key", "aws_iam_user_login_profile"`, `"registry.terraform.io/hashicorp/", "terraform.io/builtin/"`},
			{`"google_project_iam_binding", "azurerm_role_assignment", "aws_iam_policy_attachment"`, `"registry.terraform.io/", "registry.opentofu.org/", "terraform.io/builtin/"`},
		},
	},
	{
		name: "change_limits",
		text: `# @@NAME@@: limits on how much one plan changes, by action.
package terratask.bench.@@NAME@@

max_deletes := @@P1@@

max_changes := @@P2@@

warn_creates := @@P3@@

action_counts[action] := n if {
	some action in {"create", "update", "delete", "read", "no-op"}
	n := count([rc | some rc in input.resource_changes; action in rc.change.actions])
}

changes := (action_counts.create + action_counts.update) + action_counts.delete

deny contains msg if {
	action_counts.delete > max_deletes
	msg := sprintf("the plan deletes %d resources, more than %d", [action_counts.delete, max_deletes])
}

require_approval contains msg if {
	changes > max_changes
	msg := sprintf("the plan changes %d resources, more than the %d a task may change without a person", [changes, max_changes])
}

warn contains msg if {
	action_counts.create > warn_creates
	msg := sprintf("the plan creates %d resources, more than %d: check that it is meant", [action_counts.create, warn_creates])
}
`,
		params: [2][]string{{"10", "200", "40"}, {"25", "500", "100"}},
	},
	{
		name: "tag_values",
		text: `# @@NAME@@: the tags a resource carries have values from the agreed lists.
package terratask.bench.@@NAME@@

allowed_values := {@@P2@@}

# taggable are the managed resources created or updated with a tags map.
taggable contains rc if {
	some rc in input.resource_changes
	rc.mode == "managed"
	some action in rc.change.actions
	action in {"create", "update"}
	is_object(rc.change.after)
	is_object(rc.change.after.tags)
}

deny contains msg if {
	some rc in taggable
	value := rc.change.after.tags["@@P1@@"]
	not value in allowed_values
	msg := sprintf("%s: tag @@P1@@ is %q, not one of %s", [rc.address, value, concat(", ", sort(allowed_values))])
}

deny contains msg if {
	some rc in taggable
	value := rc.change.after.tags.cost_center
	not regex.match(` + "`@@P3@@`" + `, value)
	msg := sprintf("%s: cost_center %q does not match %s", [rc.address, value, ` + "`@@P3@@`" + `])
}

warn contains msg if {
	some rc in taggable
	count(rc.change.after.tags) > @@P4@@
	msg := sprintf("%s: %d tags, more than %d", [rc.address, count(rc.change.after.tags), @@P4@@])
}
`,
		params: [2][]string{
			{"environment", `"dev", "staging", "prod"`, `^cc-[0-9]{4}$`, "40"},
			{"stage", `"test", "live"`, `^[A-Z]{2}[0-9]{3,6}$`, "50"},
		},
	},
	{
		name: "naming",
		text: `# @@NAME@@: resource names follow the naming convention.
package terratask.bench.@@NAME@@

pattern := ` + "`@@P1@@`" + `

max_length := @@P2@@

deny contains msg if {
	some rc in input.resource_changes
	rc.mode == "managed"
	not regex.match(pattern, rc.name)
	msg := sprintf("%s: the name %q does not match %s", [rc.address, rc.name, pattern])
}

warn contains msg if {
	some rc in input.resource_changes
	count(rc.name) > max_length
	msg := sprintf("%s: the name is %d characters long, more than %d", [rc.address, count(rc.name), max_length])
}
`,
		params: [2][]string{{`^[a-z][a-z0-9_]*$`, "40"}, {`^[a-z0-9_]+$`, "64"}},
	},
	{
		name: "protected",
		text: `# @@NAME@@: a person approves changes and deletions of protected resources.
package terratask.bench.@@NAME@@

protected := [@@P1@@]

require_approval contains msg if {
	some rc in input.resource_changes
	some action in rc.change.actions
	action in {"update", "delete"}
	some pattern in protected
	glob.match(pattern, ["."], rc.address)
	msg := sprintf("%s: a %s of a protected resource (%s) needs a person", [rc.address, action, pattern])
}
`,
		params: [2][]string{
			{`"aws_db_instance.*", "aws_rds_cluster.*", "module.prod.**"`},
			{`"aws_s3_bucket.*", "google_sql_database_instance.*", "azurerm_key_vault.*"`},
		},
	},
	{
		name: "agent_guard",
		text: `# @@NAME@@: agents never delete in the main workspaces, and deletions at
# the weekend wait for a person.
package terratask.bench.@@NAME@@

guarded := {@@P1@@}

deletes := [rc.address |
	some rc in input.resource_changes
	"delete" in rc.change.actions
]

deny contains msg if {
	input.terratask.key.agent != ""
	input.terratask.task.workspace in guarded
	count(deletes) > 0
	msg := sprintf("agent %s may not delete in workspace %s: %s", [input.terratask.key.agent, input.terratask.task.workspace, concat(", ", deletes)])
}

require_approval contains msg if {
	count(deletes) > 0
	day := time.weekday(time.parse_rfc3339_ns(input.terratask.now))
	day in {"Saturday", "Sunday"}
	msg := sprintf("the plan deletes %d resource(s) on a %s", [count(deletes), day])
}
`,
		params: [2][]string{{`"prod", "production"`}, {`"live", "main"`}},
	},
	{
		name: "config_hygiene",
		text: `# @@NAME@@: no denied provisioners, secret-looking outputs are sensitive,
# variables are described.
package terratask.bench.@@NAME@@

denied_provisioners := {@@P1@@}

deny contains msg if {
	some r in input.configuration.root_module.resources
	some p in r.provisioners
	p.type in denied_provisioners
	msg := sprintf("%s: a %s provisioner is not allowed", [r.address, p.type])
}

warn contains msg if {
	some name, oc in input.output_changes
	regex.match(` + "`(?i)(password|secret|token|private_key)`" + `, name)
	oc.after_sensitive == false
	msg := sprintf("output %s looks secret but is not marked sensitive", [name])
}

warn contains msg if {
	some name, v in input.configuration.root_module.variables
	not v.description
	msg := sprintf("variable %s has no description", [name])
}
`,
		params: [2][]string{{`"remote-exec"`}, {`"file", "chef", "habitat"`}},
	},
	{
		name: "planned_size",
		text: `# @@NAME@@: planned values stay small, and few values wait for the apply.
package terratask.bench.@@NAME@@

max_unknown := @@P1@@

max_bytes := @@P2@@

unknown_after contains rc.address if {
	some rc in input.resource_changes
	some _, v in rc.change.after_unknown
	v == true
}

deny contains msg if {
	some rc in input.resource_changes
	is_object(rc.change.after)
	n := count(json.marshal(rc.change.after))
	n > max_bytes
	msg := sprintf("%s: its planned values are %d bytes of JSON, more than %d", [rc.address, n, max_bytes])
}

warn contains msg if {
	count(unknown_after) > max_unknown
	msg := sprintf("%d resources have values known only after apply (more than %d)", [count(unknown_after), max_unknown])
}
`,
		params: [2][]string{{"20", "65536"}, {"100", "262144"}},
	},
}

// GeneratedPolicies are the 16 generated modules, by policy name.
func GeneratedPolicies() map[string]string {
	out := map[string]string{}
	for _, t := range policyTemplates {
		for i, ps := range t.params {
			name := fmt.Sprintf("bench_%s_%c", t.name, 'a'+i)
			pairs := []string{"@@NAME@@", name}
			for j, p := range ps {
				pairs = append(pairs, fmt.Sprintf("@@P%d@@", j+1), p)
			}
			out[name] = strings.NewReplacer(pairs...).Replace(t.text)
		}
	}
	return out
}

// ExamplePolicies are the example set's modules (deployments/policies
// under the module root: every *.rego but *_test.rego), by policy name.
func ExamplePolicies(root string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(root, "deployments", "policies", "*.rego"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(filepath.Base(f), ".rego")] = string(b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no policies in %s/deployments/policies", root)
	}
	return out, nil
}

// PolicySet is the policy rows' set: the example policies and the
// generated ones, as version 1 of each, by name.
func PolicySet(root string) ([]policy.Module, error) {
	ex, err := ExamplePolicies(root)
	if err != nil {
		return nil, err
	}
	all := GeneratedPolicies()
	for name, text := range ex {
		all[name] = text
	}
	var mods []policy.Module
	for name, text := range all {
		mods = append(mods, policy.Module{Name: name, Version: 1, SHA256: policy.Digest(text), Rego: text})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	return mods, nil
}
