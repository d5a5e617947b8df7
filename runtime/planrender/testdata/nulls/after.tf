resource "terraform_data" "n" {
  input = { a = "now", b = null, l = ["p", null], o = { z = 1 } }
}

output "o" {
  value = { a = "now", b = null }
}
