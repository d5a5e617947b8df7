# Sample configuration for `make demo` and the opsbot quick start.
#
# It uses only Terraform's built-in provider (terraform_data) and the
# local-exec provisioner, so `terraform init` downloads nothing: it runs on
# an agent with no route to a provider registry.

terraform {
  required_version = ">= 1.4"
}

variable "environment" {
  description = "Name of the environment the resources belong to."
  type        = string
  default     = "demo"
}

variable "app_instances" {
  description = "How many application instances to declare."
  type        = number
  default     = 2

  validation {
    condition     = var.app_instances >= 1 && var.app_instances <= 10
    error_message = "app_instances must be between 1 and 10."
  }
}

locals {
  prefix = "bote-${var.environment}"
}

# Stand-ins for real resources: each keeps its input in state and shows up
# in the plan's change summary like any managed resource.
resource "terraform_data" "network" {
  input = {
    name          = "${local.prefix}-vnet"
    address_space = "10.42.0.0/16"
  }
}

resource "terraform_data" "app" {
  count = var.app_instances

  input = {
    name    = "${local.prefix}-app-${count.index}"
    network = terraform_data.network.output.name
    subnet  = cidrsubnet(terraform_data.network.output.address_space, 8, count.index)
  }

  # Runs on the agent during apply; its output is streamed to
  # `opsbot logs -f`.
  provisioner "local-exec" {
    command = "echo deploying ${self.input.name} into ${self.input.subnet}"
  }
}

output "network" {
  description = "The network's name."
  value       = terraform_data.network.output.name
}

output "app_endpoints" {
  description = "One endpoint per application instance."
  value       = [for a in terraform_data.app : "https://${a.output.name}.internal.example"]
}

output "deployed_by" {
  description = "Where the apply ran."
  value       = "a bote deployment agent, environment ${var.environment}"
}
