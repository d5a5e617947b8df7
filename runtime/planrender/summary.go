package planrender

import (
	"fmt"
	"io"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// Action is what a plan does to one resource instance.
type Action string

// Actions, as Terraform names them in its symbols' legend.
const (
	NoOp         Action = "no-op"
	Create       Action = "create"
	Read         Action = "read"
	Update       Action = "update"
	Delete       Action = "delete"
	DeleteCreate Action = "delete-create" // replace: destroy, then create
	CreateDelete Action = "create-delete" // replace: create, then destroy
	// Forget drops an object from the state and leaves it alone (a removed
	// block with destroy = false).
	Forget Action = "forget"
)

// Symbol is the action's mark in Terraform's plan output.
func (a Action) Symbol() string {
	switch a {
	case Create:
		return "+"
	case Read:
		return "<="
	case Update:
		return "~"
	case Delete:
		return "-"
	case DeleteCreate:
		return "-/+"
	case CreateDelete:
		return "+/-"
	case Forget:
		return "."
	}
	return ""
}

func actionOf(as tfjson.Actions) Action {
	switch {
	case as.Create():
		return Create
	case as.Read():
		return Read
	case as.Update():
		return Update
	case as.Delete():
		return Delete
	case as.DestroyBeforeCreate():
		return DeleteCreate
	case as.CreateBeforeDestroy():
		return CreateDelete
	case as.Forget():
		return Forget
	}
	return NoOp
}

// Summary counts a plan's changes the way Terraform's "Plan:" line does
// and lists what it destroys and replaces.
type Summary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Import  int `json:"import,omitempty"`
	// Destroyed and Replaced are the addresses of resource instances the
	// plan destroys, or destroys and creates anew.
	Destroyed []string      `json:"destroyed,omitempty"`
	Replaced  []Replacement `json:"replaced,omitempty"`
	// Replace counts replacements (also counted in Add and Destroy); the
	// lists may be cut shorter than the counts (see Bound).
	Replace int `json:"replace,omitempty"`
}

// Bound cuts the lists of destroyed and replaced instances to n each.
func (s *Summary) Bound(n int) {
	if len(s.Destroyed) > n {
		s.Destroyed = s.Destroyed[:n]
	}
	if len(s.Replaced) > n {
		s.Replaced = s.Replaced[:n]
	}
}

// Replacement is one resource instance the plan replaces, and why.
type Replacement struct {
	Address string `json:"address"`
	// Reason is Terraform's action reason: replace_because_cannot_update
	// (then Paths names the attributes that force it),
	// replace_because_tainted, replace_by_request, replace_by_triggers.
	Reason string `json:"reason,omitempty"`
	// Paths are the attribute paths that force the replacement
	// ("triggers_replace", "network_interface[0].subnet_id").
	Paths []string `json:"paths,omitempty"`
}

// Summarize counts the plan's changes.
func Summarize(p *tfjson.Plan) Summary {
	var s Summary
	for _, rc := range resourceChanges(p) {
		if rc.Change.Importing != nil {
			s.Import++
		}
		switch a := actionOf(rc.Change.Actions); a {
		case Create:
			s.Add++
		case Update:
			s.Change++
		case Delete:
			s.Destroy++
			s.Destroyed = append(s.Destroyed, rc.Address)
		case DeleteCreate, CreateDelete:
			s.Add++
			s.Destroy++
			s.Replace++
			s.Replaced = append(s.Replaced, Replacement{Address: rc.Address, Reason: string(rc.ActionReason), Paths: paths(rc.Change.ReplacePaths)})
		}
	}
	return s
}

// paths writes replace_paths ([["a", 0, "b"]]) as "a[0].b".
func paths(raw []any) []string {
	var out []string
	for _, p := range raw {
		steps, ok := p.([]any)
		if !ok {
			continue
		}
		s := ""
		for _, step := range steps {
			switch step := step.(type) {
			case string:
				if s != "" {
					s += "."
				}
				s += step
			default:
				s += "[" + scalar(step) + "]"
			}
		}
		out = append(out, s)
	}
	return out
}

// reasons says why a replacement happens, in words.
var reasons = map[string]string{
	string(tfjson.ActionReasonReplaceBecauseTainted):      "tainted",
	string(tfjson.ActionReasonReplaceByRequest):           "requested with -replace",
	string(tfjson.ActionReasonReplaceByTriggers):          "replace_triggered_by",
	string(tfjson.ActionReasonReplaceBecauseCannotUpdate): "cannot be updated in place",
}

// WriteDestructive lists what the plan destroys and replaces, so an
// operator sees it right before approving; it writes nothing when the plan
// destroys nothing.
func WriteDestructive(w io.Writer, s Summary) error {
	if s.Destroy == 0 {
		return nil
	}
	var b strings.Builder
	destroyed := s.Destroy - s.Replace
	fmt.Fprintf(&b, "Warning: this plan destroys %d and replaces %d resource instance(s):\n", destroyed, s.Replace)
	for _, a := range s.Destroyed {
		fmt.Fprintf(&b, "  - %s\n", a)
	}
	if more := destroyed - len(s.Destroyed); more > 0 {
		fmt.Fprintf(&b, "  - ... and %d more (opsbot runs show RUN --plan shows them all)\n", more)
	}
	for _, r := range s.Replaced {
		why := reasons[r.Reason]
		if len(r.Paths) > 0 {
			why = "changes to " + strings.Join(r.Paths, ", ") + " force it"
		}
		if why != "" {
			why = " (" + why + ")"
		}
		fmt.Fprintf(&b, "  -/+ %s%s\n", r.Address, why)
	}
	if more := s.Replace - len(s.Replaced); more > 0 {
		fmt.Fprintf(&b, "  -/+ ... and %d more (opsbot runs show RUN --plan shows them all)\n", more)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
