package planrender

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// Render writes the plan's changes as `terraform plan` prints them:
// the symbols used, each resource change with its attribute diff, the
// "Plan:" counts and the changes to outputs. Sensitive values print as
// "(sensitive value)" and values known only after apply as "(known after
// apply)".
//
// Terraform renders attributes with the provider's schema, which the JSON
// plan does not carry: Render shows every attribute the way Terraform
// shows attributes of dynamic type (terraform_data's, or outputs). Nested
// blocks of provider resources therefore print as `name = [ { ... } ]`
// rather than `name { ... }`, and "# forces replacement" is not marked on
// attributes; the resource header says why it is replaced.
func Render(w io.Writer, p *tfjson.Plan) error {
	var rcs []*tfjson.ResourceChange
	if p != nil {
		rcs = p.ResourceChanges
	}
	return RenderPage(w, p, rcs, true)
}

// RenderPage writes a page of the plan p as Render does: only the
// resource changes rcs (some of p's), with the symbols they use, then the
// "Plan:" counts of the whole plan, then p's changes to outputs when
// outputs is set (the last page).
func RenderPage(w io.Writer, p *tfjson.Plan, rcs []*tfjson.ResourceChange, outputs bool) error {
	var b strings.Builder
	page := resourceChanges(&tfjson.Plan{ResourceChanges: rcs})
	var outs []output
	if outputs {
		outs = outputChanges(p)
	}
	if len(resourceChanges(p)) == 0 {
		if len(outs) == 0 {
			b.WriteString("\nNo changes. Your infrastructure matches the configuration.\n\n" +
				"Terraform has compared your real infrastructure against your configuration\n" +
				"and found no differences, so no changes are needed.\n")
		} else {
			b.WriteString("\nChanges to Outputs:\n")
			writeOutputs(&b, outs)
			b.WriteString("\nYou can apply this plan to save these new output values to the Terraform\n" +
				"state, without changing any real infrastructure.\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("\nTerraform used the selected providers to generate the following execution\n" +
		"plan. Resource actions are indicated with the following symbols:\n")
	used := map[Action]bool{}
	for _, rc := range page {
		used[actionOf(rc.Change.Actions)] = true
	}
	for _, a := range []Action{Create, Update, Delete, DeleteCreate, CreateDelete, Read} {
		if used[a] {
			fmt.Fprintf(&b, "%3s %s\n", a.Symbol(), legend[a])
		}
	}
	b.WriteString("\nTerraform will perform the following actions:\n")
	for _, rc := range page {
		b.WriteString("\n")
		writeResource(&b, rc)
	}
	s := Summarize(p)
	b.WriteString("\nPlan: ")
	if s.Import > 0 {
		fmt.Fprintf(&b, "%d to import, ", s.Import)
	}
	fmt.Fprintf(&b, "%d to add, %d to change, %d to destroy.\n", s.Add, s.Change, s.Destroy)
	if len(outs) > 0 {
		b.WriteString("\nChanges to Outputs:\n")
		writeOutputs(&b, outs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ResourceDiff is one resource change as Render writes it ("" for one
// Render leaves out: no change).
func ResourceDiff(rc *tfjson.ResourceChange) string {
	if len(resourceChanges(&tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{rc}})) == 0 {
		return ""
	}
	var b strings.Builder
	writeResource(&b, rc)
	return b.String()
}

var legend = map[Action]string{
	Create:       "create",
	Update:       "update in-place",
	Delete:       "destroy",
	DeleteCreate: "destroy and then create replacement",
	CreateDelete: "create replacement and then destroy",
	Read:         "read (data resources)",
}

// resourceChanges are the plan's resource changes that do something.
func resourceChanges(p *tfjson.Plan) []*tfjson.ResourceChange {
	if p == nil {
		return nil
	}
	var out []*tfjson.ResourceChange
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Change == nil {
			continue
		}
		if a := actionOf(rc.Change.Actions); a != NoOp || rc.Change.Importing != nil || movedFrom(rc) != "" {
			out = append(out, rc)
		}
	}
	return out
}

func movedFrom(rc *tfjson.ResourceChange) string {
	if rc.PreviousAddress != "" && rc.PreviousAddress != rc.Address {
		return rc.PreviousAddress
	}
	return ""
}

type output struct {
	name string
	n    *node
}

func outputChanges(p *tfjson.Plan) []output {
	if p == nil {
		return nil
	}
	var out []output
	for _, name := range slices.Sorted(maps.Keys(p.OutputChanges)) {
		c := p.OutputChanges[name]
		if c == nil {
			continue
		}
		n := diff(c.Before, c.After, c.BeforeSensitive, c.AfterSensitive, c.AfterUnknown)
		if n.act != noop {
			out = append(out, output{name, n})
		}
	}
	return out
}

func writeOutputs(b *strings.Builder, outs []output) {
	pad := 0
	for _, o := range outs {
		pad = max(pad, len(o.name))
	}
	for _, o := range outs {
		writeItem(b, 0, o.name, pad, o.n, true, false)
	}
}

// header is the comment line(s) above a resource change.
func header(rc *tfjson.ResourceChange) string {
	addr := rc.Address
	if rc.DeposedKey != "" {
		addr += fmt.Sprintf(" (deposed object %s)", rc.DeposedKey)
	}
	var what, why string
	switch actionOf(rc.Change.Actions) {
	case Create:
		what = "will be created"
	case Read:
		what = "will be read during apply"
		switch rc.ActionReason {
		case tfjson.ActionReasonReadBecauseConfigUnknown:
			why = "config refers to values not yet known"
		case tfjson.ActionReasonReadBecauseDependencyPending:
			why = "depends on a resource or a module with changes pending"
		}
	case Update:
		what = "will be updated in-place"
	case Delete:
		what = "will be destroyed"
		switch rc.ActionReason {
		case tfjson.ActionReasonDeleteBecauseNoResourceConfig:
			why = fmt.Sprintf("because %s is not in configuration", rc.Address)
		case tfjson.ActionReasonDeleteBecauseNoModule:
			why = fmt.Sprintf("because %s is not in configuration", rc.ModuleAddress)
		case tfjson.ActionReasonDeleteBecauseWrongRepetition:
			why = "because resource does not use count or for_each"
		case tfjson.ActionReasonDeleteBecauseCountIndex:
			why = fmt.Sprintf("because index [%v] is out of range for count", rc.Index)
		case tfjson.ActionReasonDeleteBecauseEachKey:
			why = fmt.Sprintf("because key [%q] is not in for_each map", fmt.Sprint(rc.Index))
		case tfjson.ActionReasonDeleteBecauseNoMoveTarget:
			why = fmt.Sprintf("because %s was moved to %s, which is not in configuration", movedFrom(rc), rc.Address)
		}
	case Forget:
		// Terraform indents these comments one space less.
		return fmt.Sprintf(" # %s will no longer be managed by Terraform, but will not be destroyed\n"+
			" # (destroy = false is set in the configuration)\n", addr)
	case DeleteCreate, CreateDelete:
		switch rc.ActionReason {
		case tfjson.ActionReasonReplaceBecauseTainted:
			what = "is tainted, so must be replaced"
		case tfjson.ActionReasonReplaceByRequest:
			what = "will be replaced, as requested"
		case tfjson.ActionReasonReplaceByTriggers:
			what = "will be replaced due to changes in replace_triggered_by"
		default:
			what = "must be replaced"
		}
	default:
		switch {
		case movedFrom(rc) != "":
			what = "has moved to " + rc.Address
			addr = movedFrom(rc)
		case rc.Change.Importing != nil:
			what = "will be imported"
		}
	}
	if rc.Change.Importing != nil && actionOf(rc.Change.Actions) != NoOp {
		what += ", and will be imported"
	}
	s := fmt.Sprintf("  # %s %s\n", addr, what)
	if why != "" {
		s += fmt.Sprintf("  # (%s)\n", why)
	}
	if from := movedFrom(rc); from != "" && actionOf(rc.Change.Actions) != NoOp {
		s += fmt.Sprintf("  # (moved from %s)\n", from)
	}
	return s
}

// identifying attributes are shown even when unchanged.
var identifying = map[string]bool{"id": true, "name": true, "tags": true}

func writeResource(b *strings.Builder, rc *tfjson.ResourceChange) {
	b.WriteString(header(rc))
	writeBody(b, rc)
}

// writeBody writes a resource change's block with its attribute diff.
func writeBody(b *strings.Builder, rc *tfjson.ResourceChange) {
	c := rc.Change
	kind := "resource"
	if rc.Mode == tfjson.DataResourceMode {
		kind = "data"
	}
	act := actionOf(c.Actions)
	symbol := fmt.Sprintf("%3s", act.Symbol())
	if act == Forget {
		symbol = " ."
	}
	fmt.Fprintf(b, "%s %s %q %q {\n", symbol, kind, rc.Type, rc.Name)

	before, _ := c.Before.(map[string]any)
	after, _ := c.After.(map[string]any)
	if act == Forget { // the object stays as it is
		c = &tfjson.Change{Before: c.Before, After: c.Before, BeforeSensitive: c.BeforeSensitive, AfterSensitive: c.BeforeSensitive}
		after = before
	}
	var items []item
	hidden, pad := 0, 0
	for _, k := range keysOf(c.AfterUnknown, before, after) {
		bv, av, unk := before[k], after[k], index(c.AfterUnknown, k)
		if bv == nil && av == nil && !isTrue(unk) {
			continue
		}
		pad = max(pad, len(k)) // hidden attributes count too, as in Terraform
		var n *node
		switch {
		case c.Before == nil:
			n = diffElement(nil, av, nil, index(c.AfterSensitive, k), unk)
		case c.After == nil && !isTrue(c.AfterUnknown):
			n = whole(bv, remove, index(c.BeforeSensitive, k))
		default:
			n = diff(bv, av, index(c.BeforeSensitive, k), index(c.AfterSensitive, k), unk)
		}
		if n.act == noop && !identifying[k] {
			hidden++
			continue
		}
		items = append(items, item{key: k, n: n})
	}
	for _, it := range items {
		writeItem(b, 1, it.key, pad, it.n, true, false)
	}
	writeHidden(b, 2, hidden, "attribute")
	b.WriteString("    }\n")
}

func writeHidden(b *strings.Builder, depth, n int, what string) {
	if n == 0 {
		return
	}
	if n > 1 {
		what += "s"
	}
	fmt.Fprintf(b, "%s# (%d unchanged %s hidden)\n", indent(depth), n, what)
}

func indent(depth int) string { return strings.Repeat(" ", 4*depth) }

// writeItem writes one value at depth: key = value for an attribute or
// object entry, the value and a comma for a list element.
func writeItem(b *strings.Builder, depth int, key string, pad int, n *node, top, inList bool) {
	b.WriteString(indent(depth) + "  " + n.act.symbol() + " ")
	if key != "" {
		fmt.Fprintf(b, "%-*s = ", pad, key)
	}
	b.WriteString(n.prefix)
	suffix := n.suffix
	if top && n.act == remove {
		suffix += " -> null"
	}
	comma := ""
	if inList {
		comma = ","
	}
	switch {
	case n.heredoc != nil:
		b.WriteString("<<-EOT\n")
		for _, l := range n.heredoc {
			if l.hidden > 0 {
				writeHidden(b, depth+2, l.hidden, "line")
				continue
			}
			b.WriteString(indent(depth+1) + "  " + l.act.symbol() + " " + l.text + "\n")
		}
		b.WriteString(indent(depth+1) + "EOT" + suffix + comma + "\n")
	case n.open == "":
		b.WriteString(n.text + suffix + comma + "\n")
	case len(n.items) == 0 && n.hidden == 0:
		b.WriteString(n.open + n.close + suffix + comma + "\n")
	default:
		b.WriteString(n.open + "\n")
		cpad := n.pad
		for _, it := range n.items {
			cpad = max(cpad, len(it.key))
		}
		list := n.open == "["
		for _, it := range n.items {
			if it.n == nil {
				writeHidden(b, depth+2, it.hidden, "element")
				continue
			}
			writeItem(b, depth+1, it.key, cpad, it.n, false, list)
		}
		writeHidden(b, depth+2, n.hidden, n.hiddenWhat)
		b.WriteString(indent(depth+1) + n.close + suffix + comma + "\n")
	}
}
