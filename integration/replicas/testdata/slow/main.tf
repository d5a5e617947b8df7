# An apply that takes a while: the create of "slow" sleeps in a local-exec
# provisioner (cancel, agent crash and server restart tests).
variable "sleep_seconds" {
  type    = number
  default = 30
}

resource "terraform_data" "slow" {
  input = "slow"

  provisioner "local-exec" {
    command = "echo slow apply starting; sleep ${var.sleep_seconds}; echo slow apply done"
  }
}

output "slept" {
  value = var.sleep_seconds
}
