# The demo module: the default configuration of `terratask dev`, so the
# seed's example task ({"app_name": "my-app", "deploy_strategy": "rolling"})
# runs as written. It needs no provider download: five terraform_data
# resources deploy a pretend application one stage after another, each with
# a short local-exec step, so progress and logs move visibly.

variable "app_name" {
  description = "Name of the application to deploy."
  type        = string
  default     = "demo-app"
}

variable "deploy_strategy" {
  description = "How the pretend rollout proceeds (rolling, blue-green, canary, recreate)."
  type        = string
  default     = "rolling"
}

variable "step_seconds" {
  description = "How long each stage pauses, in seconds."
  type        = number
  default     = 0.3
}

locals {
  release = "${var.app_name}-${var.deploy_strategy}"
}

resource "terraform_data" "network" {
  input = "${var.app_name}-net"
  provisioner "local-exec" {
    command = "sleep ${var.step_seconds}; echo \"network ${self.input} ready\""
  }
}

resource "terraform_data" "database" {
  input = "${var.app_name}-db on ${terraform_data.network.output}"
  provisioner "local-exec" {
    command = "sleep ${var.step_seconds}; echo \"database ${self.input} ready\""
  }
}

resource "terraform_data" "build" {
  input = local.release
  provisioner "local-exec" {
    command = "sleep ${var.step_seconds}; echo \"built ${self.input}\""
  }
}

resource "terraform_data" "deploy" {
  input = {
    release  = terraform_data.build.output
    database = terraform_data.database.output
    strategy = var.deploy_strategy
  }
  provisioner "local-exec" {
    command = "sleep ${var.step_seconds}; echo \"deployed ${var.app_name} (${var.deploy_strategy})\""
  }
}

resource "terraform_data" "health_check" {
  input = terraform_data.deploy.output.release
  provisioner "local-exec" {
    command = "sleep ${var.step_seconds}; echo \"${var.app_name} is healthy\""
  }
}

output "app_name" {
  value = var.app_name
}

output "deploy_strategy" {
  value = var.deploy_strategy
}

output "release" {
  value = terraform_data.health_check.output
}

output "url" {
  value = "https://${var.app_name}.example.internal"
}
