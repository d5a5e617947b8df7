package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/botehq/platform/runtime/opsapitypes"
)

func writeJSONIndent(w io.Writer, v any) error { return writeJSON(w, v, "  ") }

// writeJSONLine writes one compact JSON value per line (for streams).
func writeJSONLine(w io.Writer, v any) error { return writeJSON(w, v, "") }

// writeJSON writes v and a newline, without escaping <, > and & (">= 1.10"
// stays readable).
func writeJSON(w io.Writer, v any, indent string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("cannot encode output: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func printStatus(w io.Writer, st *opsapitypes.Status) {
	relayState := "not connected"
	if st.RelayConnected {
		relayState = "connected"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Server version:\t%s\n", st.Version)
	fmt.Fprintf(tw, "Started:\t%s (up %s)\n", st.StartedAt.UTC().Format(time.RFC3339), time.Duration(st.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "Relay listener:\t%s\n", relayState)
	fmt.Fprintf(tw, "Agents:\t%d\n", st.AgentCount)
	tw.Flush()
}

// printAgents lists agents; a version other than the deployed one is
// marked with "*" and explained below the table.
func printAgents(w io.Writer, list opsapitypes.AgentList) {
	agents := list.Agents
	if len(agents) == 0 {
		fmt.Fprintln(w, "No agents.")
		return
	}
	// RUNS (running/capacity) once any agent has heartbeated; a server
	// with a fixed agent list has nothing to show there.
	load := slices.ContainsFunc(agents, func(a opsapitypes.Agent) bool { return a.Capacity > 0 })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(id, tenant, name, state, runs, version, terraform, lastSeen string) {
		cols := []string{id, tenant, name, state, runs, version, terraform, lastSeen}
		if !load {
			cols = slices.Delete(cols, 4, 5)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	row("ID", "TENANT", "NAME", "STATE", "RUNS", "VERSION", "TERRAFORM", "LAST SEEN")
	outdated := 0
	for _, a := range agents {
		lastSeen := "-"
		if a.LastSeen != nil {
			lastSeen = a.LastSeen.UTC().Format(time.RFC3339)
		}
		runs := "-"
		if a.Capacity > 0 {
			runs = fmt.Sprintf("%d/%d", len(a.Running), a.Capacity)
		}
		version := cmp.Or(a.Version, "-")
		if a.Outdated {
			version += " *"
			outdated++
		}
		row(a.ID, a.Tenant, a.Name, a.State, runs, version, cmp.Or(a.TerraformVersion, "-"), lastSeen)
	}
	tw.Flush()
	if outdated > 0 {
		fmt.Fprintf(w, "\n* %d agent(s) run a version other than the deployed %s; update them (docs/agent.md).\n", outdated, list.DeployedVersion)
	}
}

func printWorkspaces(w io.Writer, list []opsapitypes.Workspace) {
	if len(list) == 0 {
		fmt.Fprintln(w, "No workspaces.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAUTO-APPLY\tFOUR-EYES\tAGENT LABELS\tTERRAFORM\tCREATED")
	for _, ws := range list {
		fmt.Fprintf(tw, "%s\t%t\t%t\t%s\t%s\t%s\n", ws.Name, ws.AutoApply, ws.FourEyes, labelString(ws.Labels),
			cmp.Or(ws.TerraformVersion, "-"), timeOrDash(ws.CreatedAt))
	}
	tw.Flush()
}

func printRuns(w io.Writer, list []opsapitypes.Run) {
	if len(list) == 0 {
		fmt.Fprintln(w, "No runs.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKSPACE\tOPERATION\tSTATE\tCHANGES\tAGENT\tCREATED\tUPDATED")
	for _, r := range list {
		agent := cmp.Or(r.Agent, r.ApplyAgent, r.PlanAgent, "-")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workspace, r.Operation, r.State,
			changeCounts(r.PlanResult), agent, timeOrDash(r.CreatedAt), timeOrDash(r.UpdatedAt))
	}
	tw.Flush()
}

// printRun is `runs show`.
func printRun(w io.Writer, r *opsapitypes.Run) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Run:\t%s\n", r.ID)
	fmt.Fprintf(tw, "Workspace:\t%s (tenant %s)\n", r.Workspace, r.Tenant)
	fmt.Fprintf(tw, "Operation:\t%s\n", r.Operation)
	if o := r.PlanOptions; o != nil {
		fmt.Fprintf(tw, "Plan options:\t%s\n", planOptionsString(*o))
	}
	fmt.Fprintf(tw, "State:\t%s\n", r.State)
	if r.Waiting != "" {
		fmt.Fprintf(tw, "Waiting:\t%s\n", r.Waiting)
	}
	if r.CancelRequested {
		fmt.Fprintf(tw, "Cancel:\trequested\n")
	}
	fmt.Fprintf(tw, "Created:\t%s by %s\n", timeOrDash(r.CreatedAt), cmp.Or(r.CreatedBy, "-"))
	if r.Agent != "" {
		fmt.Fprintf(tw, "Agent:\t%s\n", r.Agent)
	}
	if r.PlanAgent != "" {
		fmt.Fprintf(tw, "Planned on:\t%s\n", r.PlanAgent)
	}
	if r.ApplyAgent != "" {
		fmt.Fprintf(tw, "Applied on:\t%s\n", r.ApplyAgent)
	}
	if r.Deadline != nil {
		fmt.Fprintf(tw, "Deadline:\t%s\n", timeOrDash(*r.Deadline))
	}
	if r.PlanResult != nil {
		fmt.Fprintf(tw, "Plan:\t%s\n", changeLine(r.PlanResult, false))
	}
	if r.ApplyResult != nil {
		fmt.Fprintf(tw, "Apply:\t%s\n", changeLine(r.ApplyResult, true))
	}
	tw.Flush()
	printPolicyCheck(w, r)
	fmt.Fprintln(w, "\nHistory:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range r.History {
		fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\t%s\n", timeOrDash(h.At), cmp.Or(h.From, "-"), h.To, cmp.Or(h.By, "-"), h.Reason)
	}
	tw.Flush()
	printDiagnostics(w, r.PlanResult)
	printDiagnostics(w, r.ApplyResult)
	printOutputs(w, r.ApplyResult)
}

// printOutcome is what a followed run ends with.
func printOutcome(w io.Writer, r *opsapitypes.Run) {
	fmt.Fprintln(w)
	switch {
	case r.State == opsapitypes.StatePlanned && r.Policy != nil && r.Policy.Blocked:
		fmt.Fprintf(w, "Plan saved: %s; it failed policy %s.\n", changeLine(r.PlanResult, false), failedPolicies(r.Policy))
	case r.State == opsapitypes.StatePlanned:
		fmt.Fprintf(w, "Plan saved: %s.\nApply it with: opsbot apply %s\n", changeLine(r.PlanResult, false), r.ID)
	case r.State == opsapitypes.StateNoChanges:
		fmt.Fprintf(w, "No changes: the infrastructure matches the configuration (run %s).\n", r.ID)
	case r.State == opsapitypes.StateApplied:
		fmt.Fprintf(w, "Applied: %s (run %s).\n", changeLine(r.ApplyResult, true), r.ID)
		printOutputs(w, r.ApplyResult)
	case r.State == opsapitypes.StateNeedsAttention:
		fmt.Fprintf(w, "Run %s needs attention: %s\n", r.ID, lastReason(r))
	default:
		fmt.Fprintf(w, "Run %s %s: %s\n", r.ID, r.State, lastReason(r))
	}
	printPolicyCheck(w, r)
	printDiagnostics(w, r.PlanResult)
	printDiagnostics(w, r.ApplyResult)
}

// changeLine is "2 to add, 0 to change, 1 to destroy", or for an apply
// "2 added, 0 changed, 1 destroyed".
func changeLine(res *opsapitypes.RunResult, applied bool) string {
	switch {
	case res == nil:
		return "no change summary"
	case res.Changes == nil && firstError(res) != "":
		return "failed: " + firstError(res)
	case res.Changes == nil && !res.HasChanges:
		return "no changes"
	case res.Changes == nil:
		return "no change summary"
	}
	c := res.Changes
	if applied {
		return fmt.Sprintf("%d added, %d changed, %d destroyed", c.Add, c.Change, c.Destroy)
	}
	return fmt.Sprintf("%d to add, %d to change, %d to destroy", c.Add, c.Change, c.Destroy)
}

// firstError is the summary of the result's first error diagnostic.
func firstError(res *opsapitypes.RunResult) string {
	for _, d := range res.Diagnostics {
		if d.Severity == "error" {
			return d.Summary
		}
	}
	return ""
}

// changeCounts is the compact form for tables: +2 ~0 -1.
func changeCounts(res *opsapitypes.RunResult) string {
	if res == nil || res.Changes == nil {
		return "-"
	}
	return fmt.Sprintf("+%d ~%d -%d", res.Changes.Add, res.Changes.Change, res.Changes.Destroy)
}

// printDiagnostics prints Terraform's warnings and errors the way
// Terraform does: severity and summary, where (with the line of code),
// then the detail.
func printDiagnostics(w io.Writer, res *opsapitypes.RunResult) {
	if res == nil {
		return
	}
	for _, d := range res.Diagnostics {
		fmt.Fprintf(w, "\n%s: %s", capitalize(d.Severity), d.Summary)
		if d.Code == "" {
			if where := d.Where(); where != "" {
				fmt.Fprintf(w, " (%s)", where)
			}
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "\n\n  on %s line %d", d.File, d.Line)
			if d.Context != "" {
				fmt.Fprintf(w, ", in %s", d.Context)
			}
			fmt.Fprintf(w, ":\n  %4d: %s\n", d.Line, d.Code)
		}
		if d.Detail != "" {
			if d.Code != "" {
				fmt.Fprintln(w)
			}
			for _, l := range strings.Split(strings.TrimRight(d.Detail, "\n"), "\n") {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
}

func printOutputs(w io.Writer, res *opsapitypes.RunResult) {
	if res == nil || len(res.Outputs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nOutputs:")
	for _, name := range slices.Sorted(maps.Keys(res.Outputs)) {
		o := res.Outputs[name]
		value := "<sensitive>"
		if !o.Sensitive {
			value = outputValue(o.Value)
		}
		fmt.Fprintf(w, "  %s = %s\n", name, value)
	}
}

// outputValue renders a JSON value compactly, multi-line values indented.
func outputValue(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "  ", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func labelString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// capitalize upper-cases the first letter of an ASCII word (severities).
func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
