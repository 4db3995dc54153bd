variable "size" {
  type    = number
  default = 3
}

resource "terraform_data" "thing" {
  count = var.size
  input = count.index
}

output "count" {
  value = length(terraform_data.thing)
}
