# token is deliberately not declared sensitive, so Terraform prints it: the
# runner's masker must hide it, and the env value echoed next to it.
variable "token" {
  type = string
}

resource "terraform_data" "leak" {
  input = "x"
  provisioner "local-exec" {
    command = "echo token=${var.token} key=$API_KEY"
  }
}

output "echoed" {
  value = "token was ${var.token}"
}
