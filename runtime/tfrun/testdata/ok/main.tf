variable "token" {
  type      = string
  sensitive = true
}

resource "terraform_data" "greeting" {
  input = "hello from tfrun"

  provisioner "local-exec" {
    # Prints the secret on purpose: the streamed log must show *** instead.
    command = "echo using token $DEPLOY_TOKEN"
  }
}

output "greeting" {
  value = terraform_data.greeting.output
}

output "token_echo" {
  value     = var.token
  sensitive = true
}
