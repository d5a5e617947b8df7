resource "terraform_data" "n" {
  input            = { a = "2", longlongname = "same" }
  triggers_replace = "same"
}

output "o" {
  value = { a = "2", longlongname = "same" }
}
