package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/opsconfig"
)

// runsAPI returns the ops API for the run commands: the ops client
// (through the relay or a local port), or the fake a test set.
func (a *app) runsAPI() (runsAPI, error) {
	if a.api != nil {
		return a.api, nil
	}
	return a.client()
}

func (a *app) runsCommands() []*cobra.Command {
	return []*cobra.Command{a.workspacesCommand(), a.planCommand(), a.applyCommand(), a.destroyCommand(),
		a.runsCommand(), a.logsCommand(), a.cancelCommand(), a.varsCommand()}
}

// stateList names every run state, for help texts.
func stateList() string {
	names := make([]string, 0, len(opsapitypes.States()))
	for _, st := range opsapitypes.States() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}

// logEnd returns the offset where a run's log currently ends.
func logEnd(ctx context.Context, api runsAPI, tenant, id string) (int64, error) {
	return (&app{stdout: io.Discard}).drainLogs(ctx, api, tenant, id, 0)
}

func (a *app) runsCommand() *cobra.Command {
	var q opsclient.RunQuery
	list := &cobra.Command{
		Use:   "list [--workspace W] [--state S,...] [--limit N]",
		Short: "List runs, newest first",
		Long: `List the tenant's runs, newest first: the --limit newest (default 20) of
those in --workspace and in one of the --state states:
  ` + stateList() + `.
An unknown workspace is an error (exit 9).`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			if q.Limit < 1 || q.Limit > opsapitypes.MaxRunListLimit {
				return usageError{fmt.Errorf("--limit: %d must be between 1 and %d", q.Limit, opsapitypes.MaxRunListLimit)}
			}
			for _, st := range q.States {
				if !slices.Contains(opsapitypes.States(), st) {
					return usageError{fmt.Errorf("--state: %q is not one of %v", st, opsapitypes.States())}
				}
			}
			list, err := api.Runs(cmd.Context(), tenant, q)
			if err != nil {
				return err
			}
			return a.print(list, func(w io.Writer) {
				printRuns(w, list.Runs)
				if list.Truncated {
					fmt.Fprintf(a.stderr, "(the newest %d; more with --limit)\n", len(list.Runs))
				}
			})
		}),
	}
	list.Flags().StringVarP(&q.Workspace, "workspace", "w", "", "only this workspace's runs")
	list.Flags().StringSliceVar(&q.States, "state", nil, "only runs in these states (comma-separated or repeated), e.g. planned,failed")
	list.Flags().IntVar(&q.Limit, "limit", 20, fmt.Sprintf("at most this many runs, the newest (1 to %d)", opsapitypes.MaxRunListLimit))

	var withPlan bool
	show := &cobra.Command{
		Use:   "show RUN [--plan]",
		Short: "Show a run: state, history, change summary, diagnostics, outputs; --plan: its resource changes",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			run, err := api.Run(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.showRun(cmd.Context(), api, tenant, run, withPlan)
		}),
	}
	show.Flags().BoolVar(&withPlan, "plan", false, "show the plan's resource changes as terraform plan prints them (with -o json: its structured changes)")
	c := &cobra.Command{Use: "runs", Aliases: []string{"run"}, Short: "Terraform runs"}
	c.AddCommand(list, show, a.lockFileCommand())
	return c
}

func (a *app) logsCommand() *cobra.Command {
	var follow bool
	var offset int64
	c := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print a run's log; -f follows it live until the run ends",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			a.logsToStdout = true // the log is this command's output
			if follow {
				final, _, err := a.follow(cmd.Context(), api, tenant, args[0], offset, untilEnded, false)
				if err != nil {
					return err
				}
				if a.cfg.Output == opsconfig.OutputJSON {
					return outcomeOf(final) // stdout holds the log only
				}
				return a.finish(final)
			}
			_, err := a.drainLogs(cmd.Context(), api, tenant, args[0], offset)
			return err
		}),
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log and the run's state until it ends")
	c.Flags().Int64Var(&offset, "offset", 0, "start at this byte offset of the log")
	return c
}

func (a *app) cancelCommand() *cobra.Command {
	var reason string
	var force bool
	c := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run: a waiting run ends at once, a running one is interrupted (SIGINT, then killed after a grace period)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			run, err := api.Cancel(cmd.Context(), tenant, args[0], reason, force)
			if err != nil {
				return err
			}
			return a.print(run, func(w io.Writer) {
				if run.State == opsapitypes.StateCancelled {
					fmt.Fprintf(w, "Run %s cancelled.\n", run.ID)
					return
				}
				fmt.Fprintf(w, "Run %s: cancel requested; its agent is interrupting Terraform (opsbot logs -f %s to watch).\n", run.ID, run.ID)
			})
		}),
	}
	c.Flags().StringVar(&reason, "reason", "", "why: kept in the run's history")
	c.Flags().BoolVar(&force, "force", false, "end an executing run now, without waiting for its agent to confirm (for an agent that no longer answers)")
	return c
}
