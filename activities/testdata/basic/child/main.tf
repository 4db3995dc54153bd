variable "input" {
  type = string
}

resource "terraform_data" "echo" {
  input = var.input
}

output "echo" {
  value = terraform_data.echo.output
}
