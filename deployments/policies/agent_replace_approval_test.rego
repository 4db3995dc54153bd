package terratask.agent_replace_approval

# Resource changes as `terraform show -json` writes them (reduced).
db_replace := {
	"address": "aws_db_instance.main",
	"mode": "managed",
	"type": "aws_db_instance",
	"name": "main",
	"provider_name": "registry.terraform.io/hashicorp/aws",
	"change": {
		"actions": ["delete", "create"],
		"before": {"engine": "postgres", "engine_version": "15.4", "identifier": "main"},
		"after": {"engine": "postgres", "engine_version": "16.2", "identifier": "main"},
	},
	"action_reason": "replace_because_cannot_update",
}

lb_replace_cbd := {
	"address": "module.edge.aws_lb.public",
	"module_address": "module.edge",
	"mode": "managed",
	"type": "aws_lb",
	"name": "public",
	"change": {"actions": ["create", "delete"], "before": {"name": "public"}, "after": {"name": "public-v2"}},
}

tag_update := {
	"address": "aws_s3_bucket.logs",
	"mode": "managed",
	"type": "aws_s3_bucket",
	"name": "logs",
	"change": {"actions": ["update"], "before": {"tags": {}}, "after": {"tags": {"owner": "sre"}}},
}

bucket_delete := {
	"address": "aws_s3_bucket.old",
	"mode": "managed",
	"type": "aws_s3_bucket",
	"name": "old",
	"change": {"actions": ["delete"], "before": {"bucket": "old"}, "after": null},
}

plan(changes, agent) := {
	"format_version": "1.2",
	"resource_changes": changes,
	"terratask": {"stage": "post_plan", "key": {"name": "k", "role": "operator", "agent": agent}},
}

test_agent_replacement_needs_approval if {
	require_approval == {"agent claude-ops's plan replaces 2 resource(s); a person must approve: aws_db_instance.main, module.edge.aws_lb.public"} with input as plan([db_replace, tag_update, lb_replace_cbd], "claude-ops")
}

test_agent_update_and_delete_need_no_approval if {
	# Deletes alone are agent_destroy_limit's.
	count(require_approval) == 0 with input as plan([tag_update, bucket_delete], "claude-ops")
}

test_person_replacement_needs_no_approval if {
	count(require_approval) == 0 with input as plan([db_replace], "")
}

test_pre_plan_needs_no_approval if {
	# Before the plan there are no resource changes.
	count(require_approval) == 0 with input as {"terratask": {"stage": "pre_plan", "key": {"agent": "claude-ops"}}}
}
