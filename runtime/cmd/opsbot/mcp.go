package main

import (
	"io"
	"log/slog"
	"path/filepath"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsmcp"
)

// mcpCommand is opsbot mcp: the Model Context Protocol server for AI
// assistants (package opsmcp, docs/mcp.md), over stdio.
func (a *app) mcpCommand() *cobra.Command {
	var allowApprove bool
	var roots []string
	c := &cobra.Command{
		Use:   "mcp [--allow-approve] [--root DIR ...]",
		Short: "Serve the Model Context Protocol on stdin/stdout for an AI assistant (Claude Desktop, VS Code)",
		Long: `Serve the Model Context Protocol over stdio, the way AI assistants launch
local tool servers. Every tool call is an ops API request with this profile's
credential, through the relay as any opsbot command: the server's roles decide.

The assistant can list tenants, workspaces, agents and runs, show runs, plans
(structured and as terraform plan prints them) and logs, queue plans of
directories under --root (default: the working directory) and cancel runs.
With --allow-approve it can also approve a planned run, and every approval
asks the human to confirm through the assistant (MCP elicitation); a client
that cannot ask is refused. Destroy runs, forced cancels, workspace, variable,
state and key management are never offered. See docs/mcp.md.

stdout carries only the protocol; logs go to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := a.client()
			if err != nil {
				return err
			}
			for i, r := range roots {
				if roots[i], err = filepath.Abs(r); err != nil {
					return usageError{err}
				}
			}
			srv, err := opsmcp.New(opsmcp.Config{
				API: api, Tenant: a.cfg.Tenant, AllowApprove: allowApprove, Roots: roots,
				Unreachable: func(err error) string { _, msg := explain(err, a.target); return a.redact.Redact(msg) },
				Version:     version, Logger: slog.New(slog.NewTextHandler(a.stderr, nil)),
			})
			if err != nil {
				return usageError{err}
			}
			return srv.Run(cmd.Context(), &mcp.IOTransport{Reader: io.NopCloser(a.stdin), Writer: nopWriteCloser{a.stdout}})
		},
	}
	c.Flags().BoolVar(&allowApprove, "allow-approve", false, "offer the approve_run tool (each approval still asks the human to confirm, and needs the approver role)")
	c.Flags().StringArrayVar(&roots, "root", nil, "a directory whose configurations the plan tool may upload (repeatable; default: the working directory, unless it is /)")
	return c
}

// nopWriteCloser keeps stdout open when the server stops.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
