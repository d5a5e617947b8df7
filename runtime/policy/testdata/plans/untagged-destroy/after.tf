resource "terraform_data" "keep" {
  input = {
    name = "keep"
    tags = { owner = "team-a" }
  }
}

resource "terraform_data" "replaced" {
  input = "v2"
  triggers_replace = ["v2"]
}

resource "terraform_data" "new" {
  input = { name = "new", tags = { owner = "team-c", cost-center = "7" } }
}
