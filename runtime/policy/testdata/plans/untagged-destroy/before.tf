resource "terraform_data" "keep" {
  input = {
    name = "keep"
    tags = { owner = "team-a", cost-center = "42" }
  }
}

resource "terraform_data" "old" {
  input = { name = "old" }
}

resource "terraform_data" "replaced" {
  input = "v1"
  triggers_replace = ["v1"]
}
