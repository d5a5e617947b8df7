# Resources for the policy test: one tagged as require-tags wants, one not
# (var.owner empty).
variable "owner" {
  type    = string
  default = ""
}

resource "terraform_data" "tagged" {
  input = { tags = { owner = "team-a", cost-center = "42" } }
}

resource "terraform_data" "untagged" {
  input = { tags = var.owner == "" ? {} : { owner = var.owner, cost-center = "42" } }
}
