variable "password" {
  type      = string
  sensitive = true
  default   = "battery-staple"
}

resource "terraform_data" "obj" {
  input = {
    name   = "b"
    keep   = "same"
    other  = "same too"
    size   = 2
    nested = { k = "v2", j = "unchanged" }
    list   = ["l1", "l2", "l3", "l4", "l5x", "l6"]
    objs   = [{ n = 1, m = "x" }, { n = 2, m = "z" }]
    text   = "one\n2\nthree\n"
    added  = [true]
  }
}

resource "terraform_data" "secret" {
  input = var.password
}

resource "terraform_data" "same" {
  input = "unchanged"
}

output "changed" {
  value = "after"
}

output "same" {
  value = "same"
}

output "added" {
  value = terraform_data.obj.output
}

output "password" {
  value     = var.password
  sensitive = true
}
