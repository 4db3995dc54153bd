# Three resources applied one after another (parallelism 1), each with a
# short sleep, so that many tasks are applying at once across the fleet.
variable "sleep_seconds" {
  type    = number
  default = 2
}

resource "terraform_data" "step" {
  count = 3
  input = "step-${count.index}"
  provisioner "local-exec" {
    command = "sleep ${var.sleep_seconds}; echo step ${count.index} done"
  }
}

output "steps" {
  value = length(terraform_data.step)
}
