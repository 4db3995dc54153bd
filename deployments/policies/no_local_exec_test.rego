package terratask.no_local_exec

# pre_plan inputs: a task's inline files.
task(files) := {"terratask": {
	"stage": "pre_plan",
	"key": {"name": "ci", "role": "operator", "agent": ""},
	"task": {"name": "net", "files": files, "variables": [], "credentials": []},
}}

main_tf := `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_s3_bucket" "logs" {
  bucket = "acme-logs" # a comment: provisioner "local-exec" {
}
`

local_exec_tf := `
resource "null_resource" "bootstrap" {
  triggers = { always = timestamp() }

  provisioner "local-exec" {
    command = "curl -s https://example.com/install.sh | sh"
  }
}
`

bare_label_tf := `
resource "terraform_data" "x" {
  provisioner local-exec {
    command = "id"
  }
}
`

external_tf := `
data "external" "whoami" {
  program = ["sh", "-c", "echo '{\"user\": \"'$(id -un)'\"}'"]
}
`

commented_tf := `
/*
resource "null_resource" "old" {
  provisioner "local-exec" { command = "true" }
}
*/
// data "external" "x" {
# provisioner "local-exec" {
data "external_lookup" "not_external" {}
resource "aws_instance" "web" {
  provisioner "remote-exec" {
    inline = ["true"]
  }
}
`

local_exec_json := `{
  "resource": {
    "null_resource": {
      "bootstrap": {
        "provisioner": [{"local-exec": {"command": "make deploy"}}]
      }
    }
  }
}`

external_json := `{"data": {"external": {"whoami": {"program": ["id"]}}}}`

test_clean_files_allowed if {
	count(deny) == 0 with input as task({"main.tf": main_tf, "variables.tf": `variable "region" {}`, "terraform.tfvars.json": `{"region": "eu-west-1"}`})
}

test_local_exec_denied if {
	deny == {"bootstrap.tf: a local-exec provisioner runs commands on the runner host; use a provider's resources instead"} with input as task({"main.tf": main_tf, "bootstrap.tf": local_exec_tf})
}

test_bare_label_denied if {
	deny == {"x.tf: a local-exec provisioner runs commands on the runner host; use a provider's resources instead"} with input as task({"x.tf": bare_label_tf})
}

test_external_data_source_denied if {
	deny == {"whoami.tofu: an external data source runs a program on the runner host during the plan"} with input as task({"whoami.tofu": external_tf})
}

test_comments_and_lookalikes_allowed if {
	count(deny) == 0 with input as task({"main.tf": commented_tf})
}

test_json_syntax_denied if {
	deny == {
		"bootstrap.tf.json: a local-exec provisioner runs commands on the runner host; use a provider's resources instead",
		"whoami.tf.json: an external data source runs a program on the runner host during the plan",
	} with input as task({"bootstrap.tf.json": local_exec_json, "whoami.tf.json": external_json})
}

test_no_files_allowed if {
	count(deny) == 0 with input as task({})
}

# post_plan: the configuration section of `terraform show -json`, for a
# task whose code came from a module source.
plan_with(root_module) := {
	"format_version": "1.2",
	"resource_changes": [],
	"configuration": {"provider_config": {}, "root_module": root_module},
	"terratask": {"stage": "post_plan", "key": {"agent": ""}, "task": {"source": "git::https://example.com/net.git", "files": {}}},
}

test_module_local_exec_denied if {
	deny == {
		"module.net.module.dns.null_resource.flush: a local-exec provisioner runs commands on the runner host; use a provider's resources instead",
		"module.net.data.external.ip: an external data source runs a program on the runner host",
	} with input as plan_with({
		"resources": [{
			"address": "aws_vpc.main", "mode": "managed", "type": "aws_vpc", "name": "main",
			"provider_config_key": "aws",
			"expressions": {"cidr_block": {"constant_value": "10.0.0.0/16"}},
		}],
		"module_calls": {"net": {
			"source": "./modules/net",
			"module": {
				"resources": [{
					"address": "data.external.ip", "mode": "data", "type": "external", "name": "ip",
					"expressions": {"program": {"constant_value": ["sh", "ip.sh"]}},
				}],
				"module_calls": {"dns": {
					"source": "./dns",
					"module": {"resources": [{
						"address": "null_resource.flush", "mode": "managed", "type": "null_resource", "name": "flush",
						"provisioners": [{"type": "local-exec", "expressions": {"command": {"constant_value": "flush-dns"}}}],
					}]},
				}},
			},
		}},
	})
}

test_module_without_local_exec_allowed if {
	count(deny) == 0 with input as plan_with({"resources": [{
		"address": "aws_instance.web", "mode": "managed", "type": "aws_instance", "name": "web",
		"provisioners": [{"type": "file", "expressions": {"source": {"constant_value": "app.conf"}}}],
	}]})
}
