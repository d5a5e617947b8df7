// Command opsbot is the operator CLI of the ops server. It reaches
// ops server through Azure Relay Hybrid Connections (as a sender; no
// inbound port anywhere), or an ops server's local port for development.
//
// One file per command group:
//
//	opsbot status                  server version, uptime, relay, agent count (status.go)
//	opsbot agents list [--tenant]  deployment agents, their load and last heartbeat (status.go)
//	opsbot events                  follow server events over a relayed WebSocket (events.go)
//	opsbot config show             the resolved configuration and where each value came from (config.go)
//
// and the runs of a tenant (--tenant or OPSBOT_TENANT; api.go, docs/opsbot.md):
//
//	opsbot workspaces create|list|update [--four-eyes]   (workspaces.go)
//	opsbot plan --workspace W --dir D     pack, upload, follow the run live (apply.go)
//	opsbot apply RUN [--yes]              confirm, approve, follow the apply (apply.go)
//	opsbot destroy --workspace W --dir D  plan a destroy, confirm, apply (apply.go)
//	opsbot runs list|show, logs [-f] RUN, cancel RUN   (runs.go; following: follow.go)
//	opsbot state versions|pull|rollback --workspace W   kept Terraform states (state.go)
//	opsbot mcp [--allow-approve]          MCP server for AI assistants on stdio (mcp.go, docs/mcp.md)
//
// and, for platform administrators, operator API keys (keys.go):
//
//	opsbot keys create ID (--role TENANT=ROLE ... | --admin)   the key is printed once
//	opsbot keys list|rotate ID|revoke ID
//	opsbot whoami                                   any operator: the credential's roles
//
// Configuration comes from flags, OPSBOT_* environment variables and a
// config file with named profiles (package opsconfig); output is a table
// or, with -o json, the API's JSON. Failures have distinct exit codes (see
// package exitcode and docs/ops.md) so that scripts can tell a relay problem
// from a credential problem or a name that does not exist, and a followed
// run's outcome has its own: 10 the plan has changes, 11 failed, 12
// cancelled or timed out. A mistyped command or flag is an error with the
// closest names (usage.go); Ctrl-C while following stops following, not
// the run (interrupt.go).
package main

import (
	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
)

// version is the module version the binary was built from.
var version = buildinfo.Read().Version

func main() { program.Main("opsbot", run) }
