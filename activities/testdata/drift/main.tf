# A resource the real world moves: a time_rotating whose rotation time has
# passed is gone at the next refresh (the time provider, served offline from
# a filesystem mirror in tests).
terraform {
  required_providers {
    time = {
      source  = "registry.terraform.io/hashicorp/time"
      version = "0.14.2"
    }
  }
}

variable "rotate_at" {
  type = string
}

resource "time_rotating" "key" {
  rotation_rfc3339 = var.rotate_at
}

resource "terraform_data" "steady" {
  input = "unchanged"
}
