# agent_replace_approval: a person approves an AI agent's plan that
# replaces a resource.
#
# Stage: post_plan (it reads the plan's resource_changes).
#
# A replacement destroys a resource and creates a new one (actions
# ["delete", "create"], or ["create", "delete"] with create_before_destroy):
# a database or a volume loses its data, an instance its address. When a
# task created by an API key bound to an agent (input.terratask.key.agent
# is set) plans one, its plan waits for a person's approval (terratask
# tasks approve/reject), whatever the task's own approval parameter says.
# People's tasks are not affected.
#
# Tune: to ask only for some resource types, add
# `rc.type in {"aws_db_instance", "aws_ebs_volume"}` to replaced; to deny
# instead of asking, rename the rule to deny.
package terratask.agent_replace_approval

# replaced are the addresses of the resources the plan replaces.
replaced contains rc.address if {
	some rc in input.resource_changes
	"delete" in rc.change.actions
	"create" in rc.change.actions
}

require_approval contains msg if {
	input.terratask.key.agent != ""
	count(replaced) > 0
	msg := sprintf(
		"agent %s's plan replaces %d resource(s); a person must approve: %s",
		[input.terratask.key.agent, count(replaced), concat(", ", sort(replaced))],
	)
}
