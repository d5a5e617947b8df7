resource "terraform_data" "x" {
  inptu = 1
}
