resource "terraform_data" "broken" {
  input = var.not_declared
}
