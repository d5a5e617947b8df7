package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/runspec"
)

func (a *app) workspacesCommand() *cobra.Command {
	var req opsapitypes.CreateWorkspaceRequest
	var labels []string
	var planTimeout, applyTimeout, approvalTimeout time.Duration
	var providers providerFlags
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a workspace: one Terraform configuration for one environment",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			req.Name = args[0]
			var err error
			if req.Labels, err = parseLabels(labels); err != nil {
				return usageError{fmt.Errorf("--label: %w", err)}
			}
			// The server checks again; checking here names the flag.
			ws := runspec.Workspace{Tenant: tenant, Name: req.Name, Description: req.Description, AgentLabels: req.Labels, TerraformVersion: req.TerraformVersion,
				Options: runspec.Options{AutoApply: req.AutoApply, FourEyes: req.FourEyes, PlanTimeout: planTimeout, ApplyTimeout: applyTimeout, ApprovalTimeout: approvalTimeout}}
			if err := ws.Validate(); err != nil {
				return usageError{err}
			}
			req.Timeouts = opsapitypes.Timeouts{Plan: durationString(planTimeout), Apply: durationString(applyTimeout), Approval: durationString(approvalTimeout)}
			req.Providers = providers.sources(cmd.Flags())
			created, err := api.CreateWorkspace(cmd.Context(), tenant, req)
			if err != nil {
				return err
			}
			return a.print(created, func(w io.Writer) { printWorkspaces(w, []opsapitypes.Workspace{*created}) })
		}),
	}
	create.Flags().BoolVar(&req.AutoApply, "auto-apply", false, "apply a plan with changes without waiting for approval (needs the approver role)")
	create.Flags().BoolVar(&req.FourEyes, "four-eyes", false, "whoever queued a run may not approve it (turning it off later needs a platform administrator)")
	create.Flags().StringArrayVar(&labels, "label", nil, "run only on agents with this label, key=value (repeatable)")
	create.Flags().StringVar(&req.Description, "description", "", "what the workspace is for")
	create.Flags().StringVar(&req.TerraformVersion, "terraform-version", "", `run only on agents whose terraform meets this version constraint ("~> 1.9", ">= 1.10, < 2.0")`)
	create.Flags().DurationVar(&planTimeout, "plan-timeout", 0, "how long a plan may run (default 1h)")
	create.Flags().DurationVar(&applyTimeout, "apply-timeout", 0, "how long an apply may run (default 2h)")
	create.Flags().DurationVar(&approvalTimeout, "approval-timeout", 0, "how long a saved plan waits for approval (default 24h)")
	providers.register(create.Flags(), false)

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's workspaces",
		Args:  cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			list, err := api.Workspaces(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.WorkspaceList{Workspaces: list}, func(w io.Writer) { printWorkspaces(w, list) })
		}),
	}
	c := &cobra.Command{Use: "workspaces", Aliases: []string{"workspace", "ws"}, Short: "Workspaces of a tenant"}
	c.AddCommand(create, list, a.workspaceUpdateCommand())
	return c
}

// workspaceUpdateCommand changes only the settings whose flags are given.
func (a *app) workspaceUpdateCommand() *cobra.Command {
	var description, terraformVersion string
	var autoApply, fourEyes bool
	var labels []string
	var planTimeout, applyTimeout, approvalTimeout time.Duration
	var providers providerFlags
	update := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a workspace's settings; only the flags given change",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			var req opsapitypes.UpdateWorkspaceRequest
			f := cmd.Flags()
			if f.Changed("description") {
				req.Description = &description
			}
			if f.Changed("auto-apply") {
				req.AutoApply = &autoApply
			}
			if f.Changed("four-eyes") {
				req.FourEyes = &fourEyes
			}
			if f.Changed("terraform-version") {
				req.TerraformVersion = &terraformVersion
			}
			req.Providers = providers.sources(f)
			if f.Changed("label") {
				l, err := parseLabels(slices.DeleteFunc(labels, func(s string) bool { return s == "" }))
				if err != nil {
					return usageError{fmt.Errorf("--label: %w", err)}
				}
				if l == nil {
					l = map[string]string{}
				}
				req.Labels = &l
			}
			req.Timeouts = opsapitypes.Timeouts{Plan: durationString(planTimeout), Apply: durationString(applyTimeout), Approval: durationString(approvalTimeout)}
			if err := (runspec.Options{PlanTimeout: planTimeout, ApplyTimeout: applyTimeout, ApprovalTimeout: approvalTimeout}).Validate(); err != nil {
				return usageError{err}
			}
			if req == (opsapitypes.UpdateWorkspaceRequest{}) {
				return usageError{errors.New("nothing to change: give at least one of --description, --auto-apply, --four-eyes, --label, --terraform-version, --*-timeout, --provider-*")}
			}
			ws, err := api.UpdateWorkspace(cmd.Context(), tenant, args[0], req)
			if err != nil {
				return err
			}
			return a.print(ws, func(w io.Writer) { printWorkspaces(w, []opsapitypes.Workspace{*ws}) })
		}),
	}
	update.Flags().StringVar(&description, "description", "", "what the workspace is for")
	update.Flags().StringVar(&terraformVersion, "terraform-version", "", `run only on agents whose terraform meets this constraint ("~> 1.9"; "" removes it)`)
	update.Flags().BoolVar(&autoApply, "auto-apply", false, "apply plans without approval (turning it on needs the approver role)")
	update.Flags().BoolVar(&fourEyes, "four-eyes", false, "whoever queued a run may not approve it (--four-eyes=false needs a platform administrator)")
	update.Flags().StringArrayVar(&labels, "label", nil, "replace the agent labels, key=value (repeatable; --label '' clears them)")
	update.Flags().DurationVar(&planTimeout, "plan-timeout", 0, "how long a plan may run")
	update.Flags().DurationVar(&applyTimeout, "apply-timeout", 0, "how long an apply may run")
	update.Flags().DurationVar(&approvalTimeout, "approval-timeout", 0, "how long a saved plan waits for approval")
	providers.register(update.Flags(), true)
	return update
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

// workspaceFlag adds the --workspace flag of the commands that act on one
// workspace; requireWorkspace checks it was given.
func workspaceFlag(c *cobra.Command, workspace *string) {
	c.Flags().StringVarP(workspace, "workspace", "w", "", "workspace (required)")
}

func requireWorkspace(workspace string) error {
	if workspace == "" {
		return usageError{errors.New("--workspace: required")}
	}
	return nil
}
