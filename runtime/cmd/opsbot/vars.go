package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// varsCommand is `opsbot vars`: a workspace's input variables.
func (a *app) varsCommand() *cobra.Command {
	// size: the vars command group's subcommands and flags declared together, as cobra reads them.
	var workspace string
	var sensitive bool
	list := &cobra.Command{
		Use:   "list --workspace W",
		Short: "List the workspace's input variables (sensitive ones by name only)",
		Args:  cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			if err := requireWorkspace(workspace); err != nil {
				return err
			}
			vs, err := api.Vars(cmd.Context(), tenant, workspace)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.VariableList{Vars: vs}, func(w io.Writer) { printVars(w, vs) })
		}),
	}
	set := &cobra.Command{
		Use:   "set --workspace W NAME [VALUE] [--sensitive]",
		Short: "Set an input variable for every plan of the workspace (without VALUE: read from stdin)",
		Long: `Set an input variable for every plan of the workspace. The value is a string,
as Terraform takes TF_VAR_ variables and -var for a primitive type. Without
VALUE it is read from stdin (a trailing newline dropped), which keeps a secret
out of the shell's history.

--sensitive keeps it in the server's secret store with the deployment secrets:
it is sealed to the agent for each run, redacted from the run's logs and
plans, and never shown again (vars list shows its name only). Per-run --var
values of opsbot plan win over workspace variables.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			if err := requireWorkspace(workspace); err != nil {
				return err
			}
			value := ""
			if len(args) == 2 {
				value = args[1]
			} else {
				if a.stdinIsTerminal() {
					fmt.Fprintf(a.stderr, "Value of %s (end with Ctrl-D): ", args[0])
				}
				data, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
				if err != nil {
					return fmt.Errorf("cannot read the value from stdin: %w", err)
				}
				if len(data) == 0 { // /dev/null, a CI step: never an empty value by accident
					return usageError{fmt.Errorf("no value on stdin for %s: pipe it in, or give VALUE (\"\" for an empty string)", args[0])}
				}
				value = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
			}
			v, err := api.SetVar(cmd.Context(), tenant, workspace, args[0], value, sensitive)
			if err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) {
				kind := ""
				if v.Sensitive {
					kind = " (sensitive)"
				}
				fmt.Fprintf(w, "Variable %s%s set for workspace %s.\n", v.Name, kind, workspace)
			})
		}),
	}
	set.Flags().BoolVar(&sensitive, "sensitive", false, "keep it secret: sealed to the agent for each run, never shown again")
	unset := &cobra.Command{
		Use:   "unset --workspace W NAME",
		Short: "Remove an input variable of the workspace",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			if err := requireWorkspace(workspace); err != nil {
				return err
			}
			v, err := api.UnsetVar(cmd.Context(), tenant, workspace, args[0])
			if err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) { fmt.Fprintf(w, "Variable %s removed from workspace %s.\n", v.Name, workspace) })
		}),
	}
	c := &cobra.Command{Use: "vars", Aliases: []string{"var", "variables"}, Short: "Input variables of a workspace, plain or sensitive"}
	for _, sub := range []*cobra.Command{list, set, unset} {
		workspaceFlag(sub, &workspace)
		c.AddCommand(sub)
	}
	return c
}

func printVars(w io.Writer, vs []opsapitypes.Variable) {
	if len(vs) == 0 {
		fmt.Fprintln(w, "No variables.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE")
	for _, v := range vs {
		value := "<sensitive>"
		if !v.Sensitive && v.Value != nil {
			value = *v.Value
		}
		fmt.Fprintf(tw, "%s\t%s\n", v.Name, value)
	}
	tw.Flush()
}
