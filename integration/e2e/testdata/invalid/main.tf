# Not valid Terraform: an unknown argument and a reference to nothing.
resource "terraform_data" "broken" {
  input       = var.missing
  not_an_argument = true
}
