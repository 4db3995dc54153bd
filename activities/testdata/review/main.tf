# A module whose plan holds sensitive values: a variable declared sensitive,
# and one the task passes as a secret without the module saying so.
variable "password" {
  type      = string
  sensitive = true
}

variable "api_key" {
  type = string
}

variable "size" {
  type    = number
  default = 1
}

resource "terraform_data" "db" {
  input = {
    password = var.password
    key      = var.api_key
    size     = var.size
  }
  triggers_replace = [var.size]
}

resource "terraform_data" "web" {
  input = "web-${var.size}"
}

output "password" {
  value     = var.password
  sensitive = true
}

output "endpoint" {
  value = terraform_data.web.output
}
