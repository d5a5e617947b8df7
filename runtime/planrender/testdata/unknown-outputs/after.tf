# Outputs whose values are partly known only after apply: a list of
# unknowns and an object with an unknown attribute.
resource "terraform_data" "app" {
  count = 2
  input = "app-${count.index}"
}

output "endpoints" {
  value = [for a in terraform_data.app : "https://${a.output}.internal.example"]
}

output "first" {
  value = { id = terraform_data.app[0].id, name = "app" }
}
