package terratask.agent_destroy_limit

# A plan as `terraform show -json` writes it, reduced to what the policy
# reads; change is one resource change.
change(address, actions) := {
	"address": address,
	"mode": "managed",
	"type": "aws_instance",
	"name": split(address, ".")[1],
	"provider_name": "registry.terraform.io/hashicorp/aws",
	"change": {"actions": actions, "before": {}, "after": null},
}

plan(changes, agent) := {
	"format_version": "1.2",
	"terraform_version": "1.9.8",
	"resource_changes": changes,
	"terratask": {"stage": "post_plan", "key": {"name": "k", "role": "operator", "agent": agent}},
}

four_deletes := [
	change("aws_instance.a", ["delete"]),
	change("aws_instance.b", ["delete"]),
	change("aws_instance.c", ["delete", "create"]),
	change("aws_instance.d", ["create", "delete"]),
	change("aws_instance.e", ["update"]),
	change("aws_instance.f", ["no-op"]),
]

test_agent_over_the_limit_denied if {
	deny == {"agent claude-ops's plan deletes 4 resources, more than the 3 an agent may delete in one task: aws_instance.a, aws_instance.b, aws_instance.c, aws_instance.d"} with input as plan(four_deletes, "claude-ops")
}

test_agent_at_the_limit_allowed if {
	count(deny) == 0 with input as plan(array.slice(four_deletes, 1, 6), "claude-ops")
}

test_person_not_limited if {
	count(deny) == 0 with input as plan(four_deletes, "")
}

test_no_changes_allowed if {
	count(deny) == 0 with input as plan([], "claude-ops")
}

test_pre_plan_allowed if {
	# Before the plan there are no resource changes.
	count(deny) == 0 with input as {"terratask": {"stage": "pre_plan", "key": {"agent": "claude-ops"}}}
}
