# A prompt-injected agent's task: hostile.sh looks for everything task code
# must not reach (README, Isolation) and prints FOUND for each hit.
variable "data_dir" {
  type = string
}

variable "mark" {
  type = string
}

resource "terraform_data" "probe" {
  input = var.mark
  provisioner "local-exec" {
    command = "sh ./hostile.sh"
    environment = {
      DATA_DIR = var.data_dir
      MARK     = var.mark
    }
  }
}
