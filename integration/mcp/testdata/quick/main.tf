# The smallest run with changes: one terraform_data and an output.
variable "label" {
  type    = string
  default = "quick"
}

resource "terraform_data" "quick" {
  input = var.label
}

output "label" {
  value = terraform_data.quick.output
}
