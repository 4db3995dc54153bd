# Added to the hostile fixture (tenancy_test.go): a task of org B looks for
# org A's things. tenancy.sh prints FOUND for each hit and OK for what it
# must reach.
variable "victim_marks" {
  # Each of org A's markers as "first-half:second-half": the whole marker
  # is put together only in tenancy.sh's private /tmp, so it is in no file
  # or command line of this task that the search would find.
  type = string
}

variable "victim_ws" {
  type = string
}

variable "api" {
  type = string
}

resource "terraform_data" "tenancy_probe" {
  input = var.mark
  provisioner "local-exec" {
    command = "sh ./tenancy.sh"
    environment = {
      DATA_DIR    = var.data_dir
      MARK_HALVES = var.victim_marks
      VICTIM_WS   = var.victim_ws
      API         = var.api
    }
  }
}

output "probed" {
  value = terraform_data.tenancy_probe.output
}
