variable "name" {
  type    = string
  default = "world"
}

variable "token" {
  type      = string
  sensitive = true
  default   = "none"
}

resource "terraform_data" "first" {
  input = var.name
}

resource "terraform_data" "second" {
  input = terraform_data.first.output
  provisioner "local-exec" {
    command = "echo second is ready"
  }
}

module "child" {
  source = "./child"
  input  = terraform_data.second.output
}

output "greeting" {
  value = "hello ${module.child.echo}"
}

output "token" {
  value     = var.token
  sensitive = true
}
