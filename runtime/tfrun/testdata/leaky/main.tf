variable "token" {
  type      = string
  sensitive = true
}

# Terraform marks this sensitive: the kept plan masks it.
resource "terraform_data" "marked" {
  input = var.token
}

# nonsensitive() drops the mark: only the runner's redaction keeps the
# value out of the kept plan.
resource "terraform_data" "unmarked" {
  input = { copy = nonsensitive(var.token), quote = "say \"${nonsensitive(var.token)}\"" }
}
