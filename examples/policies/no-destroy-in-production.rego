# Forbid destroying resources in a production workspace: a workspace whose
# agent labels say env=prod, or one named prod or production. A replacement
# destroys too, so it is refused as well; a destroy run is refused outright.
package terraform.no_destroy_in_production

production if input.workspace.labels.env == "prod"

production if input.workspace.name in {"prod", "production"}

deny contains msg if {
	production
	some rc in input.plan.resource_changes
	"delete" in rc.change.actions
	msg := sprintf("%s would be destroyed (%s) in production workspace %s", [rc.address, concat(", ", rc.change.actions), input.workspace.name])
}

deny contains msg if {
	production
	input.run.operation == "destroy"
	msg := sprintf("destroy runs are not allowed in production workspace %s", [input.workspace.name])
}
