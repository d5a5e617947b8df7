package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// policyAPI is what `opsbot policies` and `apply --override-policy` need
// beyond runsAPI (*opsclient.Client has it).
type policyAPI interface {
	Policies(ctx context.Context, tenant string) ([]opsapitypes.Policy, error)
	Policy(ctx context.Context, tenant, name string, version int) (*opsapitypes.Policy, error)
	PutPolicy(ctx context.Context, tenant, name string, req opsapitypes.PutPolicyRequest) (*opsapitypes.Policy, error)
	DeletePolicy(ctx context.Context, tenant, name string) (*opsapitypes.Policy, error)
	PolicyVersions(ctx context.Context, tenant, name string) ([]opsapitypes.Policy, error)
	ApproveOverridingPolicy(ctx context.Context, tenant, runID string) (*opsapitypes.Run, error)
}

func policiesOf(api runsAPI) (policyAPI, error) { return clientAs[policyAPI](api, "manage policies") }

// clientAs is the client as the API a command group needs beyond runsAPI
// (*opsclient.Client has them all; tests' fakes may not).
func clientAs[T any](api runsAPI, what string) (T, error) {
	c, ok := api.(T)
	if !ok {
		return c, fmt.Errorf("this client cannot %s", what)
	}
	return c, nil
}

// withClient is withTenant for a command group whose API is T.
func withClient[T any](a *app, what string, fn func(cmd *cobra.Command, args []string, tenant string, api T) error) func(*cobra.Command, []string) error {
	return a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
		c, err := clientAs[T](api, what)
		if err != nil {
			return err
		}
		return fn(cmd, args, tenant, c)
	})
}

// withPolicies is withTenant for the policy commands.
func (a *app) withPolicies(fn func(cmd *cobra.Command, args []string, tenant string, api policyAPI) error) func(*cobra.Command, []string) error {
	return withClient(a, "manage policies", fn)
}

// policiesCommand is `opsbot policies`: the tenant's Rego policies, which
// the server checks every plan against (docs/policy.md).
func (a *app) policiesCommand() *cobra.Command {
	// size: the policies command group's subcommands and flags declared together, as cobra reads them.
	var (
		version int
		req     opsapitypes.PutPolicyRequest
		file    string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's policies",
		Args:  cobra.NoArgs,
		RunE: a.withPolicies(func(cmd *cobra.Command, _ []string, tenant string, api policyAPI) error {
			ps, err := api.Policies(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.PolicyList{Policies: ps}, func(w io.Writer) { printPolicies(w, ps, false) })
		}),
	}
	show := &cobra.Command{
		Use:   "show NAME [--version N]",
		Short: "Show a policy and its Rego source",
		Args:  cobra.ExactArgs(1),
		RunE: a.withPolicies(func(cmd *cobra.Command, args []string, tenant string, api policyAPI) error {
			p, err := api.Policy(cmd.Context(), tenant, args[0], version)
			if err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				deleted := ""
				if p.Deleted {
					deleted = ", deleted"
				}
				fmt.Fprintf(tw, "Policy:\t%s (version %d%s)\n", p.Name, p.Version, deleted)
				fmt.Fprintf(tw, "Enforcement:\t%s\n", p.Enforcement)
				fmt.Fprintf(tw, "Workspace:\t%s\n", cmp.Or(p.Workspace, "every workspace"))
				if p.Description != "" {
					fmt.Fprintf(tw, "Description:\t%s\n", p.Description)
				}
				fmt.Fprintf(tw, "Stored:\t%s by %s\n", timeOrDash(p.CreatedAt), cmp.Or(p.CreatedBy, "-"))
				fmt.Fprintf(tw, "SHA-256:\t%s\n", p.SHA256)
				tw.Flush()
				fmt.Fprintf(w, "\n%s", p.Source)
			})
		}),
	}
	show.Flags().IntVar(&version, "version", 0, "show this version (see policies versions)")
	put := &cobra.Command{
		Use:   "put NAME --file F.rego --enforcement LEVEL [--workspace W]",
		Short: "Upload a new version of a policy (platform administrators)",
		Long: `Upload a Rego policy (Rego v1, with a deny rule) as the next version of NAME.
The server compiles it and refuses it with the compiler's message if it does
not compile, so a bad policy never fails a run. --file - reads stdin.

Enforcement: advisory (failures are shown), mandatory (a failure blocks the
approval), mandatory-with-override (a failure blocks the approval unless an
approver overrides it: opsbot apply --override-policy). --workspace limits
the policy to one workspace; without it, it checks every workspace's plans.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withPolicies(func(cmd *cobra.Command, args []string, tenant string, api policyAPI) error {
			if file == "" || req.Enforcement == "" {
				return usageError{errors.New("--file and --enforcement are required")}
			}
			var (
				src []byte
				err error
			)
			if file == "-" {
				src, err = io.ReadAll(io.LimitReader(a.stdin, 1<<20))
			} else {
				src, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("cannot read the policy: %w", err)
			}
			req.Source = string(src)
			p, err := api.PutPolicy(cmd.Context(), tenant, args[0], req)
			if err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) {
				fmt.Fprintf(w, "Policy %s stored as version %d (%s, %s).\n", p.Name, p.Version, p.Enforcement, cmp.Or(p.Workspace, "every workspace"))
			})
		}),
	}
	put.Flags().StringVarP(&file, "file", "f", "", "the Rego file (- for stdin)")
	put.Flags().StringVar(&req.Enforcement, "enforcement", "", "advisory, mandatory or mandatory-with-override")
	put.Flags().StringVarP(&req.Workspace, "workspace", "w", "", "check only this workspace's plans")
	put.Flags().StringVar(&req.Description, "description", "", "what the policy is for")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy: it no longer checks plans (its versions are kept)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withPolicies(func(cmd *cobra.Command, args []string, tenant string, api policyAPI) error {
			p, err := api.DeletePolicy(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) { fmt.Fprintf(w, "Policy %s deleted (version %d).\n", p.Name, p.Version) })
		}),
	}
	versions := &cobra.Command{
		Use:   "versions NAME",
		Short: "List every version of a policy",
		Args:  cobra.ExactArgs(1),
		RunE: a.withPolicies(func(cmd *cobra.Command, args []string, tenant string, api policyAPI) error {
			vs, err := api.PolicyVersions(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.print(opsapitypes.PolicyList{Policies: vs}, func(w io.Writer) { printPolicies(w, vs, true) })
		}),
	}
	c := &cobra.Command{Use: "policies", Aliases: []string{"policy"}, Short: "Rego policies every plan is checked against"}
	c.AddCommand(list, show, put, del, versions)
	return c
}

func printPolicies(w io.Writer, ps []opsapitypes.Policy, versions bool) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "No policies.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tENFORCEMENT\tWORKSPACE\tSTORED\tBY")
	for _, p := range ps {
		v := strconv.Itoa(p.Version)
		if versions && p.Deleted {
			v += " (deleted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, v, p.Enforcement, cmp.Or(p.Workspace, "*"), timeOrDash(p.CreatedAt), cmp.Or(p.CreatedBy, "-"))
	}
	tw.Flush()
}

// printPolicyCheck shows a run's policy check: one line per policy, its
// messages under it, and what blocks the approval.
func printPolicyCheck(w io.Writer, r *opsapitypes.Run) {
	c := r.Policy
	if c == nil {
		if r.PolicyChanged != "" {
			fmt.Fprintf(w, "\nPolicy checks:\n  %s.\n", capitalize(r.PolicyChanged))
		}
		return
	}
	fmt.Fprintln(w, "\nPolicy checks:")
	for _, p := range c.Results {
		verdict := "passed"
		if !p.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  %s %s (v%d, %s)\n", verdict, p.Policy, p.Version, p.Enforcement)
		if p.Error != "" {
			fmt.Fprintf(w, "      error: %s\n", p.Error)
		}
		for _, m := range p.Messages {
			fmt.Fprintf(w, "      - %s\n", m)
		}
		for _, m := range p.Warnings {
			fmt.Fprintf(w, "      warning: %s\n", m)
		}
	}
	switch {
	case r.PolicyChanged != "":
		fmt.Fprintf(w, "  %s.\n", capitalize(r.PolicyChanged))
	case c.OverriddenBy != "":
		fmt.Fprintf(w, "  Failed policies were overridden by %s.\n", c.OverriddenBy)
	case c.Blocked && hasFailed(c, opsapitypes.EnforcementMandatory):
		fmt.Fprintln(w, "  A mandatory policy failed: this plan cannot be applied; change the configuration and plan again.")
	case c.Blocked && r.State == opsapitypes.StatePlanned:
		fmt.Fprintf(w, "  A policy failed: an approver may apply anyway with: opsbot apply --override-policy %s\n", r.ID)
	}
}

func hasFailed(c *opsapitypes.PolicyCheck, enforcement string) bool {
	for _, p := range c.Results {
		if !p.Passed && p.Enforcement == enforcement {
			return true
		}
	}
	return false
}

// failedPolicies names the failed policies of a check, for one line.
func failedPolicies(c *opsapitypes.PolicyCheck) string {
	var out []string
	for _, p := range c.Results {
		if !p.Passed {
			out = append(out, p.Policy)
		}
	}
	return strings.Join(out, ", ")
}
