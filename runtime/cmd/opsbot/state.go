package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// stateCommand reads the Terraform state the server keeps for a
// workspace (local backend): every promoted version, and any of them
// byte for byte.
func (a *app) stateCommand() *cobra.Command {
	// size: the state command group's subcommands and flags declared together, as cobra reads them.
	c := &cobra.Command{Use: "state", Short: "Terraform state the server keeps for a workspace (local backend)"}
	var workspace, version, out string
	versions := &cobra.Command{
		Use:   "versions --workspace W",
		Short: "List a workspace's kept states, newest first (reader role)",
		Long: `List the states the server kept for a workspace, newest first: every state
an apply left that the server accepted (its size and SHA-256 verified) is
kept, so a bad state can be rolled back. The current one is what the next
plan starts from.`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			if err := requireWorkspace(workspace); err != nil {
				return err
			}
			vs, err := api.StateVersions(cmd.Context(), tenant, workspace)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.StateVersionList{Versions: vs}, func(w io.Writer) { printStateVersions(w, vs) })
		}),
	}
	workspaceFlag(versions, &workspace)
	pull := &cobra.Command{
		Use:   "pull --workspace W [--version V] [-O FILE]",
		Short: "Write a workspace's current state, or a kept version, to stdout or a file (operator role)",
		Long: `Write the workspace's current Terraform state, or the version --version
names (see opsbot state versions), byte for byte to stdout or to the file -O
names. The state holds every resource attribute in the clear: keep the file
as safe as the deployment's secrets. -O writes the file only once the
whole state arrived and its SHA-256 matched.`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			if err := requireWorkspace(workspace); err != nil {
				return err
			}
			if out == "" || out == "-" {
				got, err := api.PullState(cmd.Context(), tenant, workspace, version, a.stdout)
				if err == nil {
					fmt.Fprintf(a.stderr, "opsbot: state %s of %s/%s\n", got, tenant, workspace)
				}
				return err
			}
			return a.pullToFile(cmd, api, tenant, workspace, version, out)
		}),
	}
	workspaceFlag(pull, &workspace)
	pull.Flags().StringVar(&version, "version", "", "version to read (default: the current state)")
	// -o is the output format everywhere; -O writes to a file, as in wget.
	pull.Flags().StringVarP(&out, "out-file", "O", "", "write to this file (mode 0600) instead of stdout")
	var to string
	rollback := &cobra.Command{
		Use:   "rollback --workspace W --version V",
		Short: "Make a kept state version the workspace's current state again (approver role)",
		Long: `Make the version --version names (see opsbot state versions) the workspace's
current state again: the next plan starts from it. The state it replaces
stays kept, so a rollback can itself be rolled back. The server refuses
while a run holds the workspace (a saved plan carries the state it was
planned on): cancel that run, or let it end, first.`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			if err := requireWorkspace(workspace); err != nil {
				return err
			}
			if to == "" {
				return usageError{errors.New("--version: required (opsbot state versions lists them)")}
			}
			v, err := api.RollbackState(cmd.Context(), tenant, workspace, to)
			if err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "The state of %s/%s is version %s again (%d bytes); the next plan starts from it.\n", tenant, workspace, v.Version, v.Size)
			})
		}),
	}
	workspaceFlag(rollback, &workspace)
	rollback.Flags().StringVar(&to, "version", "", "version to make current (required)")
	c.AddCommand(versions, pull, rollback)
	return c
}

// pullToFile writes the state to a temporary file beside path and renames
// it into place once it is whole.
func (a *app) pullToFile(cmd *cobra.Command, api runsAPI, tenant, workspace, version, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".opsbot-state-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	got, err := api.PullState(cmd.Context(), tenant, workspace, version, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot write %s: %w", path, cerr)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	fmt.Fprintf(a.stderr, "opsbot: state %s of %s/%s written to %s\n", got, tenant, workspace, path)
	return nil
}

func printStateVersions(w io.Writer, vs []opsapitypes.StateVersion) {
	if len(vs) == 0 {
		fmt.Fprintln(w, "No state kept for this workspace yet.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCURRENT\tCREATED\tSIZE\tRUN\tSHA256")
	for _, v := range vs {
		current := ""
		if v.Current {
			current = "yes"
		}
		sum := v.SHA256
		if len(sum) > 12 {
			sum = sum[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", v.Version, current, v.Created.Local().Format(time.DateTime), v.Size, v.Run, sum)
	}
	tw.Flush()
}
