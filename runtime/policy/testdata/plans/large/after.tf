resource "terraform_data" "r" {
  count = 1000
  input = {
    name = "r-${count.index}"
    size = count.index
    tags = { owner = "team-a", cost-center = "42", environment = "prod" }
  }
}
