// Command opsserver is the ops server (package opsserver): it serves the
// versioned ops API (package opsapi) to operators' opsbot CLIs through an
// Azure Relay Hybrid Connections listener (package relay), and optionally on
// a loopback port for local use. This command only turns flags and
// environment into an opsserver.Config, and edits API keys. Operators authenticate with API keys (stored hashed) or
// OAuth2 access tokens from a configured issuer (package operatorauth).
//
//	opsserver [flags]                     serve
//	opsserver apikey create --keys-file F --id ID (--admin | --role TENANT=ROLE ...) [--description D]
//	opsserver apikey list   --keys-file F
//	opsserver apikey rotate --keys-file F --id ID
//	opsserver apikey revoke --keys-file F --id ID
//
// The apikey commands edit the key store directly, to bootstrap the first
// admin key; afterwards admins manage keys through the API (opsbot keys).
// Instead of --keys-file F they take --keys-table T (the server's
// --api-keys-table) with --storage-connection-string, or --table-url and
// --azure-identity.
//
// Every serve flag can also be set through the environment: --hybrid-connection
// is BOTE_OPSSERVER_HYBRID_CONNECTION, and so on. Flags win over the
// environment. The names from before the rename, BOTE_RELAYSERVER_<FLAG>,
// are still read, with a warning, for one more release
// (docs/conventions.md). See docs/ops.md.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/opsserver"
)

// version is the module version the binary was built from.
var version = buildinfo.Read().Version

func main() { program.Main("opsserver", run) }

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if buildinfo.Requested(args) {
		_, err := fmt.Fprintln(stdout, "opsserver", buildinfo.Read())
		return err
	}
	if len(args) > 0 && args[0] == "apikey" {
		return runAPIKey(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.Stdout = stdout
	return opsserver.Run(ctx, cfg)
}
