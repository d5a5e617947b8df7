// Command idp is the token service connectors authenticate with: OAuth2
// client credentials with ES256 private_key_jwt assertions, JWKS and OpenID
// discovery (package idp), with signing keys persisted and rotated in a
// directory (package signingkeys) and connectors read from the registry
// file or blob, reloaded when it changes.
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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/idp"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/signingkeys"
)

func main() {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println("idp", buildinfo.Read())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "idp:", err)
		os.Exit(1)
	}
}

type options struct {
	listen       string
	issuer       string
	registry     string
	registryURL  string
	keyDir       string
	audience     string
	tokenTTL     time.Duration
	rotateEvery  time.Duration
	registryPoll time.Duration
	clientRate   float64
	clientBurst  int
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
	fs.StringVar(&o.keyDir, "key-dir", "", "directory holding the signing keys, created if missing (required)")
	fs.StringVar(&o.audience, "audience", accesstoken.DefaultAudience, "audience of issued tokens")
	fs.DurationVar(&o.tokenTTL, "token-ttl", accesstoken.DefaultTTL, "lifetime of issued tokens")
	fs.DurationVar(&o.rotateEvery, "rotate-every", signingkeys.DefaultRotateEvery, "signing key rotation period")
	fs.DurationVar(&o.registryPoll, "registry-poll", registry.DefaultPoll, "how often to look for registry changes")
	fs.Float64Var(&o.clientRate, "client-rate", idp.DefaultClientRate, "tokens per second one client may obtain")
	fs.IntVar(&o.clientBurst, "client-burst", idp.DefaultClientBurst, "burst of tokens one client may obtain")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := envflag.ApplyFunc(fs, "BOTE_IDP", envflag.NonEmpty(getenv)); err != nil {
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
	case o.keyDir == "":
		return o, errors.New("--key-dir (BOTE_IDP_KEY_DIR) is required")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, os.Getenv, stderr)
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

	keys, err := signingkeys.OpenFileStore(signingkeys.FileConfig{
		Dir: o.keyDir, RotateEvery: o.rotateEvery, TokenTTL: o.tokenTTL, Logger: logger,
	})
	if err != nil {
		return err
	}
	clients, err := registry.Watch(o.registry, o.registryURL, o.registryPoll, logger)
	if err != nil {
		return err
	}
	srv, err := idp.New(idp.Config{
		Issuer: issuer, Audience: o.audience, TokenTTL: o.tokenTTL,
		Keys: keys, Clients: clients, ClientRate: o.clientRate, ClientBurst: o.clientBurst,
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
	logger.Info("serving", "addr", ln.Addr().String(), "issuer", issuer, "registry", o.registry, "key_dir", o.keyDir)
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
