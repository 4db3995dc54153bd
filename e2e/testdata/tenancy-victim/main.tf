# Org A's task in the tenancy suite (tenancy_test.go): its markers end up in
# its state (word, secret_word), its plan file and its work dir; with
# sleep_seconds it stays applying, its env (a secret) in its processes.
variable "word" {
  type = string
}

variable "secret_word" {
  type      = string
  sensitive = true
}

variable "sleep_seconds" {
  type    = number
  default = 0
}

resource "terraform_data" "kept" {
  input = {
    word   = var.word
    secret = var.secret_word
  }
}

resource "terraform_data" "busy" {
  count      = var.sleep_seconds > 0 ? 1 : 0
  depends_on = [terraform_data.kept]
  provisioner "local-exec" {
    command = "sleep ${var.sleep_seconds}"
  }
}

output "word" {
  value = var.word
}
