package main

import (
	"io"

	"github.com/spf13/cobra"
)

// statusCommand is opsbot status: the server's version, uptime, relay
// connection and agent count.
func (a *app) statusCommand() *cobra.Command {
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the server's version, uptime, relay connection and agent count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) { printStatus(w, st) })
		},
	}
	return status
}

// agentsCommand is opsbot agents list.
func (a *app) agentsCommand() *cobra.Command {
	agentsList := &cobra.Command{
		Use:   "list",
		Short: "List deployment agents with their last heartbeat (all tenants' unless --tenant)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tenant, err := a.tenantOf(cmd)
			if err != nil {
				tenant = "" // optional here: every tenant's agents
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			list, err := c.AgentList(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return a.print(list, func(w io.Writer) { printAgents(w, *list) })
		},
	}
	agents := &cobra.Command{Use: "agents", Short: "Deployment agents"}
	agents.AddCommand(agentsList)
	return agents
}
