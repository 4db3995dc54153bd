variable "word" {
  type = string
}

variable "token" {
  type      = string
  sensitive = true
  default   = ""
}

resource "terraform_data" "echo" {
  input = var.word
}

output "echoed" {
  value = "${terraform_data.echo.output}-out"
}
