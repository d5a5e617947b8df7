resource "terraform_data" "n" {
  input = { a = null, b = "x", l = [null, "q"], o = { z = null } }
}

output "o" {
  value = { a = null, b = "x" }
}
