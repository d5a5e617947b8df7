moved {
  from = terraform_data.old
  to   = terraform_data.new
}
removed {
  from = terraform_data.gone
  lifecycle {
    destroy = false
  }
}
resource "terraform_data" "new" {
  input = "y"
}
resource "terraform_data" "nums" {
  input = { n = 2.5, big = 12345678901234567891, nul = "now", empty = ["a"], emptym = { k = "v" } }
}
data "terraform_remote_state" "r" {
  backend = "local"
  config = { path = "nonexistent.tfstate" }
  defaults = { d = terraform_data.new.output }
}
output "r" { value = data.terraform_remote_state.r.outputs }
moved {
  from = terraform_data.still
  to   = terraform_data.renamed
}
resource "terraform_data" "renamed" {
  input = "s"
}
