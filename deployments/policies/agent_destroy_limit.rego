# agent_destroy_limit: an AI agent may not delete more than a few resources
# in one plan.
#
# Stage: post_plan (it reads the plan's resource_changes).
#
# A task created by an API key bound to an agent (input.terratask.key.agent
# is set) is denied when its plan deletes more than max_deletes resources. A
# replacement (actions ["delete", "create"] or ["create", "delete"]) deletes
# too. Tasks created by people's keys (no agent) are not limited. A deny
# ends the task before anything is applied: nobody can approve it. For a
# limit a person may waive, make the rule require_approval instead.
#
# Tune: change max_deletes; to limit only some agents, add a condition such
# as `input.terratask.key.agent in {"claude-ops"}`; to exempt a workspace,
# `input.terratask.task.workspace != "sandbox"`.
package terratask.agent_destroy_limit

# max_deletes is the most resources an agent's plan may delete.
max_deletes := 3

# deletes are the addresses of the resources the plan deletes (deposed
# objects of a create_before_destroy replacement included).
deletes := [rc.address |
	some rc in input.resource_changes
	"delete" in rc.change.actions
]

deny contains msg if {
	input.terratask.key.agent != ""
	count(deletes) > max_deletes
	msg := sprintf(
		"agent %s's plan deletes %d resources, more than the %d an agent may delete in one task: %s",
		[input.terratask.key.agent, count(deletes), max_deletes, concat(", ", sort(deletes))],
	)
}
