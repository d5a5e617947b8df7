package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// driftAPI is what `opsbot drift` needs (*opsclient.Client).
type driftAPI interface {
	Drift(ctx context.Context, tenant string) ([]opsapitypes.DriftStatus, error)
	WorkspaceDrift(ctx context.Context, tenant, workspace string) (*opsapitypes.DriftStatus, error)
	SetDriftSchedule(ctx context.Context, tenant, workspace string, s opsapitypes.DriftSchedule) (*opsapitypes.DriftStatus, error)
	CheckDrift(ctx context.Context, tenant, workspace string) (*opsapitypes.DriftStatus, error)
}

func (a *app) withDrift(fn func(cmd *cobra.Command, args []string, tenant string, api driftAPI) error) func(*cobra.Command, []string) error {
	return withClient(a, "manage drift detection", fn)
}

// driftCommand is `opsbot drift`: which workspaces drifted from their
// state, and their check schedules (docs/drift.md).
func (a *app) driftCommand() *cobra.Command {
	var sched opsapitypes.DriftSchedule
	var off bool
	c := &cobra.Command{
		Use:         "drift",
		Short:       "Drift detection: list the workspaces' drift (subcommands: show, schedule, check)",
		Args:        unknownSubcommand, // opsbot drift lists; any argument must be a subcommand
		Annotations: map[string]string{groupRuns: "true"},
		RunE: a.withDrift(func(cmd *cobra.Command, _ []string, tenant string, api driftAPI) error {
			sts, err := api.Drift(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.DriftList{Workspaces: sts}, func(w io.Writer) { printDriftList(w, sts) })
		}),
	}
	show := &cobra.Command{
		Use:   "show WORKSPACE",
		Short: "Show a workspace's drift: what drifted and how",
		Args:  cobra.ExactArgs(1),
		RunE: a.withDrift(func(cmd *cobra.Command, args []string, tenant string, api driftAPI) error {
			st, err := api.WorkspaceDrift(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) { printDrift(w, st) })
		}),
	}
	schedule := &cobra.Command{
		Use:   "schedule WORKSPACE (--cron EXPR | --every DURATION | --off)",
		Short: "Check a workspace's drift on a schedule (operator role)",
		Long: `Check the workspace's drift on a schedule: a cron expression (five fields,
or @hourly, @daily...; UTC) or an interval of at least 1m. Each check is a
refresh-only plan of the configuration of the workspace's latest applied run,
queued on its agents when the workspace is idle (a busy workspace is tried
again 5 minutes later) and never applied. --off removes the schedule.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withDrift(func(cmd *cobra.Command, args []string, tenant string, api driftAPI) error {
			if off == (sched.Cron != "" || sched.Every != "") {
				return usageError{errors.New("give one of --cron, --every or --off")}
			}
			if off {
				sched = opsapitypes.DriftSchedule{}
			}
			st, err := api.SetDriftSchedule(cmd.Context(), tenant, args[0], sched)
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) {
				if st.Schedule == nil {
					fmt.Fprintf(w, "Drift of workspace %s is no longer checked on a schedule.\n", st.Workspace)
					return
				}
				fmt.Fprintf(w, "Drift of workspace %s is checked %s; next check %s.\n", st.Workspace, scheduleString(st.Schedule), timeOrDash(*st.NextCheck))
			})
		}),
	}
	schedule.Flags().StringVar(&sched.Cron, "cron", "", `cron expression, UTC ("0 3 * * *", "@hourly")`)
	schedule.Flags().StringVar(&sched.Every, "every", "", "interval (6h, 30m; at least 1m)")
	schedule.Flags().BoolVar(&off, "off", false, "remove the schedule")
	check := &cobra.Command{
		Use:   "check WORKSPACE",
		Short: "Queue a drift check of the workspace now (operator role)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withDrift(func(cmd *cobra.Command, args []string, tenant string, api driftAPI) error {
			st, err := api.CheckDrift(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) {
				fmt.Fprintf(w, "Drift check %s queued for workspace %s; see opsbot drift show %s.\n", st.LastRun, st.Workspace, st.Workspace)
			})
		}),
	}
	c.AddCommand(show, schedule, check)
	return c
}

func scheduleString(s *opsapitypes.DriftSchedule) string {
	switch {
	case s == nil:
		return "-"
	case s.Every != "":
		return "every " + s.Every
	}
	return "cron " + s.Cron
}

func printDriftList(w io.Writer, sts []opsapitypes.DriftStatus) {
	if len(sts) == 0 {
		fmt.Fprintln(w, "No workspace has a drift schedule or was checked.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKSPACE\tSTATUS\tDRIFTED\tCHECKED\tSCHEDULE\tNEXT CHECK\tRESOURCES")
	for _, st := range sts {
		checked, next := "-", "-"
		if st.CheckedAt != nil {
			checked = timeOrDash(*st.CheckedAt)
		}
		if st.NextCheck != nil {
			next = timeOrDash(*st.NextCheck)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", st.Workspace, st.Status, len(st.Resources)+st.MoreResources, checked, scheduleString(st.Schedule), next, driftedNames(st))
	}
	tw.Flush()
}

// driftedNames names what drifted for one line: the first three
// addresses, then how many more.
func driftedNames(st opsapitypes.DriftStatus) string {
	var names []string
	for _, r := range st.Resources[:min(len(st.Resources), 3)] {
		names = append(names, r.Address)
	}
	if more := len(st.Resources) + st.MoreResources - len(names); more > 0 {
		names = append(names, fmt.Sprintf("and %d more", more))
	}
	return cmp.Or(strings.Join(names, ", "), "-")
}

func printDrift(w io.Writer, st *opsapitypes.DriftStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Workspace:\t%s (tenant %s)\n", st.Workspace, st.Tenant)
	fmt.Fprintf(tw, "Status:\t%s\n", st.Status)
	if st.CheckedAt != nil {
		fmt.Fprintf(tw, "Checked:\t%s by run %s\n", timeOrDash(*st.CheckedAt), cmp.Or(st.CheckRun, "-"))
	}
	if st.Cleared != "" {
		fmt.Fprintf(tw, "Cleared:\tby the %s\n", st.Cleared)
	}
	fmt.Fprintf(tw, "Schedule:\t%s\n", scheduleString(st.Schedule))
	if st.NextCheck != nil {
		fmt.Fprintf(tw, "Next check:\t%s\n", timeOrDash(*st.NextCheck))
	}
	if st.LastError != "" {
		fmt.Fprintf(tw, "Note:\t%s\n", st.LastError)
	}
	tw.Flush()
	if len(st.Resources) > 0 {
		fmt.Fprintln(w, "\nDrifted resources (state -> real):")
	}
	for _, r := range st.Resources {
		if r.Diff != "" {
			fmt.Fprintf(w, "\n%s", r.Diff)
			continue
		}
		fmt.Fprintf(w, "  %s (%s)\n", r.Address, strings.Join(r.Actions, ", "))
		for _, a := range r.Attributes {
			fmt.Fprintf(w, "      %s: %s -> %s\n", a.Name, a.Before, a.After)
		}
	}
	if st.MoreResources > 0 {
		fmt.Fprintf(w, "  ... and %d more: opsbot runs show %s --plan\n", st.MoreResources, st.CheckRun)
	}
}
