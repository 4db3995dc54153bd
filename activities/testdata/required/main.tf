variable "needed" {
  type = string
}

resource "terraform_data" "uses" {
  input = var.needed
}
