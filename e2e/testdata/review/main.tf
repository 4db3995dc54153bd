# Plan review fixture: db is replaced when size changes (triggers_replace),
# web is updated in place; password is a sensitive variable.
variable "size" {
  type    = number
  default = 1
}

variable "password" {
  type      = string
  sensitive = true
  default   = "none"
}

resource "terraform_data" "db" {
  input = {
    size     = var.size
    password = var.password
  }
  triggers_replace = [var.size]
}

resource "terraform_data" "web" {
  input = "web-${var.size}"
}

output "endpoint" {
  value = terraform_data.web.output
}

output "password" {
  value     = var.password
  sensitive = true
}
