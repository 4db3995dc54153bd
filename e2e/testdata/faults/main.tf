# The fault suite's apply (e2e/faults_test.go): each resource's provisioner
# holds a connection to the test's effects server for hold_seconds (so the
# server sees exactly when an apply's provisioner runs, and when it dies),
# then reports its side effect. Plain bash: the sandbox has no curl promise.
variable "effects_port" {
  type = number
}

variable "hold_seconds" {
  type    = number
  default = 2
}

resource "terraform_data" "effect" {
  count = 5
  provisioner "local-exec" {
    interpreter = ["bash", "-c"]
    command     = <<-EOT
      set -e
      exec 3<>/dev/tcp/127.0.0.1/${var.effects_port}
      printf 'GET /hold?res=${count.index}&secs=${var.hold_seconds}&cwd=%s HTTP/1.0\r\n\r\n' "$PWD" >&3
      cat <&3 >/dev/null
      exec 4<>/dev/tcp/127.0.0.1/${var.effects_port}
      printf 'GET /effect?res=${count.index}&cwd=%s HTTP/1.0\r\n\r\n' "$PWD" >&4
      cat <&4 >/dev/null
      echo "effect ${count.index} done"
    EOT
  }
}

output "effects" {
  value = length(terraform_data.effect)
}
