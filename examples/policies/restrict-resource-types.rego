# Allow a plan to create only resources of the listed types.
package terraform.restrict_resource_types

allowed := {
	"azurerm_resource_group",
	"azurerm_storage_account",
	"azurerm_storage_container",
	"azurerm_key_vault",
	"terraform_data",
}

deny contains msg if {
	some rc in input.plan.resource_changes
	rc.mode == "managed"
	"create" in rc.change.actions
	not rc.type in allowed
	msg := sprintf("%s: resource type %s is not allowed here (allowed: %s)", [rc.address, rc.type, concat(", ", sort(allowed))])
}
