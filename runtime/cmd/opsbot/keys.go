package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/operator"
	"github.com/botehq/platform/runtime/opsapitypes"
)

// keysCommand manages operator API keys through the API (platform
// administrators only). A new or rotated key goes to stdout alone, once;
// everything else goes to stderr, so `opsbot keys create ... > key.txt`
// captures just the key.
func (a *app) keysCommand() *cobra.Command {
	// size: the keys command group's subcommands and flags declared together, as cobra reads them.
	var req opsapitypes.CreateKeyRequest
	var tenantRoles []string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create an API key with a role per tenant (--tenant T=ROLE) or --admin; the key is shown once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.ID = args[0]
			if err := operator.ValidateKeyID(req.ID); err != nil {
				return usageError{err}
			}
			req.Tenants = nil
			for _, tr := range tenantRoles {
				t, r, err := operator.ParseTenantRole(tr)
				if err != nil {
					return usageError{fmt.Errorf("--role: %w", err)}
				}
				if req.Tenants == nil {
					req.Tenants = map[string]operator.Role{}
				}
				req.Tenants[t] = r
			}
			if !req.Admin && len(req.Tenants) == 0 {
				return usageError{fmt.Errorf("--role or --admin: a key without grants may do nothing")}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			nk, err := c.CreateKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.showNewKey(nk, "created")
		},
	}
	create.Flags().StringArrayVar(&tenantRoles, "role", nil, "tenant=role, role one of reader, operator, approver (repeatable)")
	create.Flags().BoolVar(&req.Admin, "admin", false, "platform administrator: every tenant, key management")
	create.Flags().StringVar(&req.Description, "description", "", "who or what the key is for")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys and their grants (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			keys, err := c.Keys(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(opsapitypes.KeyList{Keys: keys}, func(w io.Writer) { printKeys(w, keys) })
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate ID",
		Short: "Give a key a new secret (shown once); the old one stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			nk, err := c.RotateKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.showNewKey(nk, "rotated")
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key for good (it stays listed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.RevokeKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(k, func(w io.Writer) { printKeys(w, []opsapitypes.APIKey{*k}) })
		},
	}
	c := &cobra.Command{Use: "keys", Aliases: []string{"key"}, Short: "Operator API keys (platform administrators)"}
	c.AddCommand(create, list, rotate, revoke)
	return c
}

// whoamiCommand shows who the credential is and what it may do.
func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the credential authenticates as and its role in each tenant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(p, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "Principal:\t%s (id %s)\n", p, p.ID)
				fmt.Fprintf(tw, "Grants:\t%s\n", p.Grants)
				tw.Flush()
			})
		},
	}
}

// showNewKey prints a new key once: alone on stdout (or as JSON with -o
// json), with a note on stderr.
func (a *app) showNewKey(nk *opsapitypes.NewKey, what string) error {
	fmt.Fprintf(a.stderr, "%s API key %q (%s); it is shown once, store it now:\n", what, nk.APIKey.ID, nk.APIKey.Grants)
	return a.print(nk, func(w io.Writer) { fmt.Fprintln(w, nk.Key) })
}

func printKeys(w io.Writer, keys []opsapitypes.APIKey) {
	if len(keys) == 0 {
		fmt.Fprintln(w, "No API keys.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tGRANTS\tCREATED\tROTATED\tDESCRIPTION")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.State(), k.Grants, timeOrDash(k.Created), timeOrDash(k.Rotated), k.Description)
	}
	tw.Flush()
}
