package planrender

import (
	"fmt"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// Drifted is one resource a plan found changed outside of Terraform (the
// plan's resource_drift).
type Drifted struct {
	Address string
	// Action is Update (attributes changed) or Delete (the object is gone).
	Action Action
	// Diff is the change as Terraform prints it under "Objects have
	// changed outside of Terraform", by Render's rules (sensitive values
	// print as "(sensitive value)").
	Diff string
}

// Drift lists the resources of p changed outside of Terraform, in the
// plan's order.
func Drift(p *tfjson.Plan) []Drifted {
	if p == nil {
		return nil
	}
	var out []Drifted
	for _, rc := range p.ResourceDrift {
		if rc == nil || rc.Change == nil {
			continue
		}
		a := actionOf(rc.Change.Actions)
		if a == NoOp {
			continue
		}
		what := "has changed"
		if a == Delete {
			what = "has been deleted"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "  # %s %s\n", rc.Address, what)
		writeBody(&b, rc)
		out = append(out, Drifted{Address: rc.Address, Action: a, Diff: b.String()})
	}
	return out
}
