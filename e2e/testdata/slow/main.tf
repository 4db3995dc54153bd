variable "step_seconds" {
  type    = number
  default = 2
}

resource "terraform_data" "step" {
  count = 4
  provisioner "local-exec" {
    command = "echo step ${count.index} starting; sleep ${var.step_seconds}; echo step ${count.index} done"
  }
}

output "steps" {
  value = length(terraform_data.step)
}
