# A configuration with Terraform built-ins only (no provider download). It
# uses both kinds of run secret on purpose: the streamed log and the result
# must never show them.
variable "api_key" {
  type = string
}

resource "terraform_data" "app" {
  input = "v1"

  provisioner "local-exec" {
    command = "echo deploying with $DEPLOY_TOKEN and ${var.api_key}"
  }
}

output "greeting" {
  value = terraform_data.app.output
}

# Not marked sensitive: the agent must withhold it anyway.
output "leaky" {
  value = "key=${var.api_key}"
}
