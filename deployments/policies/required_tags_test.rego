package main

# Resource changes as `terraform show -json` writes them (reduced).
bucket(actions, tags) := {
	"address": "aws_s3_bucket.logs",
	"mode": "managed",
	"type": "aws_s3_bucket",
	"name": "logs",
	"provider_name": "registry.terraform.io/hashicorp/aws",
	"change": {
		"actions": actions,
		"before": null,
		"after": {"bucket": "acme-logs", "force_destroy": false, "tags": tags},
		"after_unknown": {"arn": true, "id": true, "tags_all": true},
	},
}

plan(changes) := {
	"format_version": "1.2",
	"terraform_version": "1.9.8",
	"resource_changes": changes,
}

good_tags := {"owner": "sre", "cost_center": "cc-1234", "env": "prod"}

test_tagged_bucket_allowed if {
	count(deny) == 0 with input as plan([bucket(["create"], good_tags)])
}

test_missing_tags_denied if {
	deny == {
		`aws_s3_bucket.logs: missing required tag "cost_center"`,
		`aws_s3_bucket.logs: missing required tag "owner"`,
	} with input as plan([bucket(["create"], {"env": "prod"})])
}

test_null_tags_denied if {
	# tags = null, or no tags argument on a resource that has one.
	count(deny) == 2 with input as plan([bucket(["create"], null)])
}

test_empty_value_denied if {
	deny == {`aws_s3_bucket.logs: missing required tag "owner"`} with input as plan([bucket(["update"], {"owner": " ", "cost_center": "cc-1"})])
}

test_replacement_checked if {
	deny == {`aws_s3_bucket.logs: missing required tag "owner"`} with input as plan([bucket(["delete", "create"], {"cost_center": "cc-1"})])
}

test_unknown_tag_value_allowed if {
	rc := json.patch(bucket(["create"], {"cost_center": "cc-1"}), [{"op": "add", "path": "/change/after_unknown/tags", "value": {"owner": true}}])
	count(deny) == 0 with input as plan([rc])
}

test_untaggable_resources_deletes_and_reads_ignored if {
	count(deny) == 0 with input as plan([
		{
			"address": "random_id.suffix", "mode": "managed", "type": "random_id", "name": "suffix",
			"change": {"actions": ["create"], "before": null, "after": {"byte_length": 4}, "after_unknown": {"hex": true}},
		},
		{
			"address": "aws_instance.old", "mode": "managed", "type": "aws_instance", "name": "old",
			"change": {"actions": ["delete"], "before": {"tags": {}}, "after": null},
		},
		{
			"address": "data.aws_vpc.main", "mode": "data", "type": "aws_vpc", "name": "main",
			"change": {"actions": ["read"], "before": null, "after": {"tags": {}}},
		},
		{
			"address": "aws_s3_bucket.same", "mode": "managed", "type": "aws_s3_bucket", "name": "same",
			"change": {"actions": ["no-op"], "before": {"tags": {}}, "after": {"tags": {}}},
		},
	])
}

test_module_address_named if {
	rc := object.union(bucket(["create"], {"owner": "sre"}), {"address": "module.logs.aws_s3_bucket.logs", "module_address": "module.logs"})
	deny == {`module.logs.aws_s3_bucket.logs: missing required tag "cost_center"`} with input as plan([rc])
}
