# Per-run and workspace variables, targets and replacements (plan_test.go).
variable "region" {
  type = string
}

variable "size" {
  type    = string
  default = "1"
}

variable "db_password" {
  type      = string
  sensitive = true
}

resource "terraform_data" "region" {
  input = var.region
}

resource "terraform_data" "size" {
  input = var.size
}

resource "terraform_data" "password" {
  input = var.db_password

  provisioner "local-exec" {
    command = "echo password=${nonsensitive(var.db_password)}"
  }
}

resource "terraform_data" "untargeted" {
  input = "left out by -target"
}
