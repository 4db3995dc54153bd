# The variables a task's credential sets give: x through the env TF_VAR_x,
# db_password and audit_key as sensitive variables; and the env CRED_TOKEN.
# The outputs, and the provisioner's token_sha, prove the values arrived
# without showing them (their SHA-256); the provisioner also shows the
# token where the runner must mask it (the logs). Variables that hold
# credentials are declared sensitive, so Terraform keeps them out of plans
# and of what later plans show of the state.
variable "x" {
  type      = string
  sensitive = true
}

variable "db_password" {
  type      = string
  sensitive = true
}

variable "audit_key" {
  type      = string
  sensitive = true
  default   = ""
}

resource "terraform_data" "use" {
  input = "x is ${var.x}"

  provisioner "local-exec" {
    command = "echo token=$CRED_TOKEN token_sha=$(printf %s \"$CRED_TOKEN\" | sha256sum | cut -d' ' -f1)"
  }
}

output "x_sha" {
  value = nonsensitive(sha256(var.x))
}

output "db_sha" {
  value = nonsensitive(sha256(var.db_password))
}

output "audit_sha" {
  value = nonsensitive(sha256(var.audit_key))
}
