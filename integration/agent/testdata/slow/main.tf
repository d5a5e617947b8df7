resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "echo slow-start; sleep 120"
  }
}
