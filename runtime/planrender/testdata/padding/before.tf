resource "terraform_data" "n" {
  input            = { a = "1", longlongname = "same" }
  triggers_replace = "same"
}

output "o" {
  value = { a = "1", longlongname = "same" }
}
