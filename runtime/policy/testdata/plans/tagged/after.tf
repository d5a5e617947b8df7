resource "terraform_data" "app" {
  input = {
    name = "app"
    tags = { owner = "team-a", cost-center = "42", environment = "dev" }
  }
}

resource "terraform_data" "db" {
  input = {
    name = "db"
    tags = { owner = "team-b", cost-center = "43" }
  }
}
