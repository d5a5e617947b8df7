variable "password" {
  type      = string
  sensitive = true
  default   = "correct-horse"
}

resource "terraform_data" "base" {
  input = "base"
}

resource "terraform_data" "values" {
  input = {
    name     = "web"
    count    = 3
    ratio    = 0.25
    enabled  = true
    nothing  = null
    empty    = []
    none     = {}
    ports    = [80, 443]
    tags     = { "env" = "dev", "cost-center" = "42" }
    script   = "#!/bin/sh\necho hello\nexit 0\n"
    upstream = terraform_data.base.id
  }
}

resource "terraform_data" "secret" {
  input = var.password
}

resource "terraform_data" "each" {
  for_each = toset(["a", "b"])
  input    = each.key
}

output "name" {
  value = terraform_data.values.input.name
}

output "id" {
  value = terraform_data.base.id
}

output "password" {
  value     = var.password
  sensitive = true
}

output "list" {
  value = ["x", { y = 1 }]
}
