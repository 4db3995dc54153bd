# required_tags: every taggable resource a plan creates or updates carries
# the tags cost reports and on-call need.
#
# Stage: post_plan (it reads the plan's resource_changes).
#
# Written as for conftest (package main, a deny set of messages) and with
# nothing of terratask's input: the same file runs unchanged with
# `conftest test plan.json` or `opa eval` on `terraform show -json`
# output. A managed resource being created or updated (a replacement
# included) whose planned values have a tags attribute must have each of
# required_tags with a non-empty value; a tag whose value is only known
# after apply (after_unknown) counts as set. Resources without a tags
# attribute (most non-AWS/Azure/GCP-label types) are not checked, nor are
# deletions and data sources. One deny per missing tag, naming the address.
#
# Tune: edit required_tags. With the AWS provider's default_tags, the
# merged tags are in tags_all, which is often unknown until apply: check
# "tags_all" instead of "tags" only if your plans know them. To warn
# rather than deny while teams catch up, rename the rule to warn.
package main

required_tags := {"owner", "cost_center"}

# changed are the managed resources the plan creates or updates.
changed contains rc if {
	some rc in input.resource_changes
	rc.mode == "managed"
	some action in rc.change.actions
	action in {"create", "update"}
}

# tagged reports whether a tag has a value, or one known only after apply.
tagged(rc, tag) if trim_space(rc.change.after.tags[tag]) != ""

tagged(rc, tag) if rc.change.after_unknown.tags[tag] == true

tagged(rc, _) if rc.change.after_unknown.tags == true

deny contains msg if {
	some rc in changed
	is_object(rc.change.after)
	"tags" in object.keys(rc.change.after)
	some tag in required_tags
	not tagged(rc, tag)
	msg := sprintf("%s: missing required tag %q", [rc.address, tag])
}
