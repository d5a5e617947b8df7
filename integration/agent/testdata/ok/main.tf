# Terraform built-ins only: no provider download.
resource "terraform_data" "greeting" {
  input = "hello from the agent"

  provisioner "local-exec" {
    # Prints the run secret on purpose: the server must only ever see ***.
    command = "echo using token $DEPLOY_TOKEN"
  }
}

output "greeting" {
  value = terraform_data.greeting.output
}
