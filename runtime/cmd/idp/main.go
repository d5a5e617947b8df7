// Command idp is the token service connectors authenticate with: OAuth2
// client credentials with ES256 private_key_jwt assertions, JWKS and OpenID
// discovery (package idp), with signing keys persisted and rotated in a
// directory or in Key Vault (package signingkeys), used assertions
// optionally shared with other replicas in an Azure Table (package replay),
// and connectors read from the registry file or blob, reloaded when it
// changes.
//
// Every flag can also be set through the environment: --token-ttl is
// BOTE_IDP_TOKEN_TTL, and so on. Flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/idp"
	"github.com/botehq/platform/runtime/internal/aztable"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/replay"
	"github.com/botehq/platform/runtime/signingkeys"
)

func main() { program.Main("idp", run) }

type options struct {
	listen       string
	issuer       string
	registry     string
	registryURL  string
	keyDir       string
	keyVaultURL  string
	replayURL    string
	replayConn   string
	replayTable  string
	audience     string
	tokenTTL     time.Duration
	rotateEvery  time.Duration
	registryPoll time.Duration
	clientRate   float64
	clientBurst  int
	globalRate   float64
	globalBurst  int
	logLevel     slog.Level
}

// parseFlags reads flags, with defaults taken from BOTE_IDP_* variables.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8081", "address to serve on (port 0 picks a free port)")
	fs.StringVar(&o.issuer, "issuer", "", "public base URL of the idp (default: http://<listen address>)")
	fs.StringVar(&o.registry, "registry", "", "connector registry file (this or --registry-url is required)")
	fs.StringVar(&o.registryURL, "registry-url", "", "connector registry blob URL, read with the managed identity unless it carries a SAS token (the stack output registryBlobUrl)")
	fs.StringVar(&o.keyDir, "key-dir", "", "directory holding the signing keys, created if missing (this or --key-vault-url is required)")
	fs.StringVar(&o.keyVaultURL, "key-vault-url", "", "Key Vault holding the signing keys as secrets, shared by every replica, read and written with the managed identity (the stack output idpKeyVaultUri)")
	fs.StringVar(&o.replayURL, "replay-table-url", "", "Azure Table of used client assertions shared by every replica (https://<account>.table.<suffix>/"+replay.DefaultTable+"), with the managed identity unless it carries a SAS token")
	fs.StringVar(&o.replayConn, "replay-connection-string", "", "storage connection string (Azurite locally) for the shared table of used client assertions; the table is created if missing")
	fs.StringVar(&o.replayTable, "replay-table", replay.DefaultTable, "table name with --replay-connection-string")
	fs.StringVar(&o.audience, "audience", accesstoken.DefaultAudience, "audience of issued tokens")
	fs.DurationVar(&o.tokenTTL, "token-ttl", accesstoken.DefaultTTL, "lifetime of issued tokens")
	fs.DurationVar(&o.rotateEvery, "rotate-every", signingkeys.DefaultRotateEvery, "signing key rotation period")
	fs.DurationVar(&o.registryPoll, "registry-poll", registry.DefaultPoll, "how often to look for registry changes")
	fs.Float64Var(&o.clientRate, "client-rate", idp.DefaultClientRate, "tokens per second one client may obtain")
	fs.IntVar(&o.clientBurst, "client-burst", idp.DefaultClientBurst, "burst of tokens one client may obtain")
	fs.Float64Var(&o.globalRate, "global-rate", idp.DefaultGlobalRate, "token requests per second, all clients together")
	fs.IntVar(&o.globalBurst, "global-burst", idp.DefaultGlobalBurst, "burst of token requests, all clients together (size it to the fleet: a reconnect after a long outage asks for one token per connector)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := envflag.Apply(fs, "BOTE_IDP", getenv); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case o.registry == "" && o.registryURL == "":
		return o, errors.New("--registry (BOTE_IDP_REGISTRY) or --registry-url (BOTE_IDP_REGISTRY_URL) is required")
	case o.registry != "" && o.registryURL != "":
		return o, errors.New("--registry and --registry-url are exclusive: give one")
	case o.keyDir == "" && o.keyVaultURL == "":
		return o, errors.New("--key-dir (BOTE_IDP_KEY_DIR) or --key-vault-url (BOTE_IDP_KEY_VAULT_URL) is required")
	case o.keyDir != "" && o.keyVaultURL != "":
		return o, errors.New("--key-dir and --key-vault-url are exclusive: give one")
	case o.replayURL != "" && o.replayConn != "":
		return o, errors.New("--replay-table-url and --replay-connection-string are exclusive: give one")
	}
	return o, nil
}

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if buildinfo.Requested(args) {
		_, err := fmt.Fprintln(stdout, "idp", buildinfo.Read())
		return err
	}
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.logLevel})).With("service", "idp")

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", o.listen, err)
	}
	defer ln.Close()
	issuer := strings.TrimSuffix(o.issuer, "/")
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}

	keys, err := openKeys(o, logger)
	if err != nil {
		return err
	}
	replays, err := openReplay(ctx, o, logger)
	if err != nil {
		return err
	}
	clients, err := registry.Watch(o.registry, o.registryURL, o.registryPoll, logger)
	if err != nil {
		return err
	}
	srv, err := idp.New(idp.Config{
		Issuer: issuer, Audience: o.audience, TokenTTL: o.tokenTTL,
		Keys: keys, Replay: replays, Clients: clients, ClientRate: o.clientRate, ClientBurst: o.clientBurst,
		GlobalRate: o.globalRate, GlobalBurst: o.globalBurst,
		Logger: logger,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go clients.Run(ctx)

	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String(), "issuer", issuer, "registry", o.registry, "key_dir", o.keyDir,
		"key_vault", o.keyVaultURL, "shared_replay", replays != nil)
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	select {
	case err := <-serveErr:
		return fmt.Errorf("cannot serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShutdown()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("cannot shut down cleanly: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// openKeys opens the signing key store: a directory (local runs, one
// replica) or Key Vault (Azure, shared by the replicas).
func openKeys(o options, logger *slog.Logger) (signingkeys.Store, error) {
	if o.keyVaultURL == "" {
		return signingkeys.OpenFileStore(signingkeys.FileConfig{
			Dir: o.keyDir, RotateEvery: o.rotateEvery, TokenTTL: o.tokenTTL, Logger: logger,
		})
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("--key-vault-url: cannot get the managed identity: %w", err)
	}
	client, err := azsecrets.NewClient(o.keyVaultURL, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("--key-vault-url: %w", err)
	}
	return signingkeys.NewKeyVaultStore(signingkeys.KeyVaultConfig{
		Client: client, RotateEvery: o.rotateEvery, TokenTTL: o.tokenTTL, Logger: logger,
	})
}

// openReplay opens the replay table shared by the replicas, or returns nil
// (each replica remembers the assertions it saw).
func openReplay(ctx context.Context, o options, logger *slog.Logger) (idp.ReplayStore, error) {
	var client *aztables.Client
	switch {
	case o.replayConn != "":
		svc, err := aztables.NewServiceClientFromConnectionString(o.replayConn, nil)
		if err != nil {
			return nil, fmt.Errorf("--replay-connection-string: %w", err)
		}
		if err := aztable.Create(ctx, svc, o.replayTable); err != nil {
			return nil, err
		}
		client = svc.NewClient(o.replayTable)
	case o.replayURL != "":
		u, err := url.Parse(o.replayURL)
		if err != nil {
			return nil, fmt.Errorf("--replay-table-url: %w", err)
		}
		if u.Query().Get("sig") != "" {
			client, err = aztables.NewClientWithNoCredential(o.replayURL, nil)
		} else {
			cred, cerr := azidentity.NewDefaultAzureCredential(nil)
			if cerr != nil {
				return nil, fmt.Errorf("--replay-table-url: cannot get the managed identity: %w", cerr)
			}
			client, err = aztables.NewClient(o.replayURL, cred, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("--replay-table-url: %w", err)
		}
	default:
		return nil, nil
	}
	return replay.NewTable(client, nil, logger)
}
