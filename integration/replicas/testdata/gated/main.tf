# An apply that runs until the test lets it end: the create of "gated"
# waits in a local-exec provisioner for the file var.gate to exist (at
# most two minutes), so that replicas are killed while it runs however
# slow the machine, and no longer than the test needs.
variable "gate" {
  type = string
}

resource "terraform_data" "gated" {
  input = "gated"

  provisioner "local-exec" {
    command = "echo slow apply starting; i=0; while [ ! -e '${var.gate}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; echo slow apply done"
  }
}
