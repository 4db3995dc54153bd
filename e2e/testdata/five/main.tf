variable "greeting" {
  type    = string
  default = "hello"
}

variable "api_token" {
  type      = string
  sensitive = true
  default   = "unset"
}

resource "terraform_data" "item" {
  count = 5
  input = "${var.greeting}-${count.index}"
}

output "names" {
  value = terraform_data.item[*].output
}

output "greeting" {
  value = var.greeting
}

output "token" {
  value     = var.api_token
  sensitive = true
}
