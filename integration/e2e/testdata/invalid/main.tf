# Not valid Terraform: terraform_data has no such argument.
resource "terraform_data" "broken" {
  input           = "x"
  not_an_argument = true
}
