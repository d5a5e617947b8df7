// Command relayserver is the ops server: it serves the versioned ops API
// (package opsapi) to operators' opsbot CLIs through an Azure Relay Hybrid
// Connections listener (package relay), and optionally on a loopback port
// for local use. Operators authenticate with API keys (stored hashed) or
// OAuth2 access tokens from a configured issuer (package operatorauth).
//
//	relayserver [flags]                     serve
//	relayserver apikey create --keys-file F --id ID (--admin | --role TENANT=ROLE ...) [--description D]
//	relayserver apikey list   --keys-file F
//	relayserver apikey rotate --keys-file F --id ID
//	relayserver apikey revoke --keys-file F --id ID
//
// The apikey commands edit the keys file directly, to bootstrap the first
// admin key; afterwards admins manage keys through the API (opsbot keys).
//
// Every serve flag can also be set through the environment: --hybrid-connection
// is BOTE_RELAYSERVER_HYBRID_CONNECTION, and so on. Flags win over the
// environment. See docs/ops.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/botehq/platform/runtime/buildinfo"
)

// version is the module version the binary was built from.
var version = buildinfo.Read().Version

func main() {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println("relayserver", buildinfo.Read())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "relayserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "apikey" {
		return runAPIKey(args[1:], os.Stdout, os.Stderr)
	}
	o, err := parseOptions(args, getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return serve(ctx, o, os.Stdout, os.Stderr)
}
