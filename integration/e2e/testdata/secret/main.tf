# Uses per-run secrets: DEPLOY_TOKEN reaches the Terraform process as
# environment, db_password as an input variable. The provisioner prints
# both, so the streamed log must show them redacted.
variable "db_password" {
  type      = string
  sensitive = true
}

resource "terraform_data" "uses_secrets" {
  input = "secret-user"

  provisioner "local-exec" {
    command = "echo token=$DEPLOY_TOKEN; echo password=${nonsensitive(var.db_password)}"
  }
}

output "password_length" {
  value = length(nonsensitive(var.db_password))
}
