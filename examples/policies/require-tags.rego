# Require the tags owner and cost-center on every resource a plan creates or
# updates that carries tags: resources with a tags attribute, and
# terraform_data (Terraform's built-in resource, which the tests plan with),
# whose tags are in its input.
package terraform.require_tags

required := {"owner", "cost-center"}

taggable(rc) if "tags" in object.keys(object.get(rc.change, "after", {}))

taggable(rc) if rc.type == "terraform_data"

tags(rc) := t if {
	t := rc.change.after.tags
	is_object(t)
} else := t if {
	t := rc.change.after.input.tags
	is_object(t)
} else := {}

deny contains msg if {
	some rc in input.plan.resource_changes
	rc.mode == "managed"
	some action in rc.change.actions
	action in {"create", "update"}
	taggable(rc)
	missing := required - {k | some k, _ in tags(rc)}
	count(missing) > 0
	msg := sprintf("%s is missing the tags %s", [rc.address, concat(", ", sort(missing))])
}

warn contains msg if {
	some rc in input.plan.resource_changes
	rc.mode == "managed"
	"create" in rc.change.actions
	taggable(rc)
	t := tags(rc)
	not t.environment
	msg := sprintf("%s has no environment tag", [rc.address])
}
