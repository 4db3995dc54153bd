variable "marker" {
  type = string
}

resource "terraform_data" "first" {
  input = var.marker
}

resource "terraform_data" "hang" {
  depends_on = [terraform_data.first]
  input      = var.marker
  provisioner "local-exec" {
    # The marker names this task's sleeper, so the test can look for it.
    command = "echo waiting; sleep 300 # ${var.marker}"
  }
}
