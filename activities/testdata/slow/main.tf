# The sleep is a child of the local-exec shell, so it outlives the shell
# when Terraform is interrupted unless the runner stops it.
variable "secs" {
  type = string
}

resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "echo starting; sleep ${var.secs}; echo finished"
  }
}
