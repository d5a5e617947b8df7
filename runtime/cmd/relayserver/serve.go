package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/relay"
)

func newLogger(o options, stderr io.Writer) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(stderr, hopts))
	}
	return slog.New(slog.NewTextHandler(stderr, hopts))
}

// loadAgents is the agent list of a server without runs: a seed file, or
// the registry's agents (reloaded while ctx lasts).
func loadAgents(ctx context.Context, o options, log *slog.Logger) (opsapi.AgentStore, error) {
	switch {
	case o.agentsFile != "":
		agents, err := opsapi.LoadAgentsFile(o.agentsFile)
		if err != nil {
			return nil, err
		}
		return opsapi.NewStaticAgents(agents), nil
	case o.registryFile != "" || o.registryURL != "":
		w, err := registry.Watch(o.registryFile, o.registryURL, 0, log)
		if err != nil {
			return nil, err
		}
		go w.Run(ctx)
		return opsapi.RegistryAgents(w.Current), nil
	}
	return opsapi.NewStaticAgents(nil), nil
}

// serve runs the server until ctx ends (a clean exit) or the relay listener
// fails permanently (an error).
func serve(ctx context.Context, o options, stdout, stderr io.Writer) error {
	log := newLogger(o, stderr)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	authCfg := operatorauth.Config{KeysFile: o.apiKeysFile, Logger: log}
	if o.apiKeysTable != "" {
		keys, err := o.openKeysTable(ctx)
		if err != nil {
			return err
		}
		authCfg.Keys = keys
	}
	if o.oauthIssuer != "" {
		jc := o.jwtConfig()
		authCfg.OAuth2 = &jc
		if o.oauthRoles == "" && o.oauthRolesFile == "" {
			log.WarnContext(ctx, "OAuth2 is on without --oauth-roles: operators with tokens are authenticated but may do nothing")
		}
	}
	auth, err := operatorauth.New(ctx, authCfg)
	if err != nil {
		return err
	}
	go auth.Watch(ctx, 5*time.Second)

	var (
		rs     *runsStack
		agents opsapi.AgentStore
	)
	if o.runsEnabled() {
		rs, err = openRuns(ctx, o, log) // agents from the run store and the registry (apiConfig)
	} else {
		agents, err = loadAgents(ctx, o, log)
	}
	if err != nil {
		return err
	}
	var current atomic.Pointer[relay.Listener]
	apiCfg := opsapi.Config{
		Version:              version,
		DeployedAgentVersion: o.agentVersion,
		Auth:                 auth,
		Agents:               agents,
		EventInterval:        o.eventInterval,
		Logger:               log,
	}
	if o.apiKeysFile != "" || o.apiKeysTable != "" {
		apiCfg.Keys = auth
	}
	if rs != nil {
		rs.apiConfig(&apiCfg)
	}
	if !o.noRelay {
		apiCfg.RelayConnected = func() bool {
			l := current.Load()
			return l != nil && l.Online()
		}
	}
	api, err := opsapi.New(apiCfg)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	fatal := make(chan error, 4)
	waitRuns := func() {}
	if rs != nil {
		waitRuns = rs.start(ctx, log, fatal)
	}
	if o.localListen != "" {
		ln, err := net.Listen("tcp", o.localListen)
		if err != nil {
			return fmt.Errorf("cannot listen on %s: %w", o.localListen, err)
		}
		fmt.Fprintf(stdout, "relayserver listening on http://%s\n", ln.Addr())
		log.Info("serving the ops API locally", "addr", ln.Addr().String(), "version", version)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fatal <- fmt.Errorf("local listener failed: %w", err)
			}
		}()
	}
	if err := serveHealth(ctx, o, log, stdout, rs, current.Load, fatal); err != nil {
		return err
	}
	if !o.noRelay {
		cfg, err := listenerConfig(o, log)
		if err != nil {
			return err
		}
		go func() {
			l, err := listenRelay(ctx, cfg, log)
			if err != nil {
				fatal <- err
				return
			}
			current.Store(l)
			fmt.Fprintf(stdout, "relayserver listening on sb://%s (relay listener id %s)\n", l.Addr(), l.ID())
			log.Info("serving the ops API through the relay", "relay", l.Addr().String(), "listener_id", l.ID(), "version", version)
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fatal <- fmt.Errorf("relay listener stopped: %w", err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-fatal:
		log.Error("shutting down", "err", runErr)
	}
	api.Shutdown()
	sctx, scancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at shutdown deadline", "err", err)
		srv.Close()
	}
	if l := current.Load(); l != nil {
		l.Close()
	}
	cancel()
	waitRuns()
	return runErr
}

func listenerConfig(o options, log *slog.Logger) (relay.ListenerConfig, error) {
	ns, hc, err := o.relayConfig()
	if err != nil {
		return relay.ListenerConfig{}, err
	}
	cfg := relay.ListenerConfig{
		Namespace:        ns,
		HybridConnection: hc,
		Insecure:         o.relayInsecure,
		Logger:           log,
		OnStatus: func(online bool, err error) {
			if online {
				log.Info("relay listener online")
			} else {
				log.Warn("relay listener offline; reconnecting", "err", err)
			}
		},
	}
	switch {
	case o.relayAuth == "entra":
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return relay.ListenerConfig{}, fmt.Errorf("cannot set up Entra ID credential: %w", err)
		}
		cfg.Credential = relay.NewEntraCredential(cred)
	case o.keyName != "":
		cfg.Credential = relay.NewSASCredential(o.keyName, o.key)
	}
	return cfg, nil
}

// listenRelay connects the relay listener, retrying failures that may pass
// (relay unreachable, service errors) with jittered backoff, and giving up
// at once on those that cannot (bad credentials, no such hybrid
// connection). Once connected, the listener reconnects by itself.
func listenRelay(ctx context.Context, cfg relay.ListenerConfig, log *slog.Logger) (*relay.Listener, error) {
	delay := time.Second
	for {
		l, err := relay.Listen(ctx, cfg)
		if err == nil {
			return l, nil
		}
		var se *relay.StatusError
		if errors.As(err, &se) && se.Permanent() {
			return nil, fmt.Errorf("cannot listen on the relay: %w", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := delay/2 + rand.N(delay/2+1)
		log.Warn("cannot connect the relay listener; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, 30*time.Second)
	}
}
