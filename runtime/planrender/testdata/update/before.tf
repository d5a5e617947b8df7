variable "password" {
  type      = string
  sensitive = true
  default   = "correct-horse"
}

resource "terraform_data" "obj" {
  input = {
    name   = "a"
    keep   = "same"
    other  = "same too"
    size   = 1
    nested = { k = "v", j = "unchanged" }
    list   = ["l1", "l2", "l3", "l4", "l5", "l6"]
    objs   = [{ n = 1, m = "x" }, { n = 2, m = "y" }]
    text   = "one\ntwo\nthree\n"
    gone   = "bye"
  }
}

resource "terraform_data" "secret" {
  input = var.password
}

resource "terraform_data" "same" {
  input = "unchanged"
}

output "changed" {
  value = "before"
}

output "removed" {
  value = { a = 1 }
}

output "same" {
  value = "same"
}

output "password" {
  value     = var.password
  sensitive = true
}
