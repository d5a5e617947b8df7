package opsserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/botehq/platform/runtime/console"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/retry"
)

// loadAgents is the agent list of a server without runs: a seed file, or
// the registry's agents (reloaded while ctx lasts).
func loadAgents(ctx context.Context, c Config, log *slog.Logger) (opsapi.AgentStore, error) {
	switch {
	case c.AgentsFile != "":
		agents, err := opsapi.LoadAgentsFile(c.AgentsFile)
		if err != nil {
			return nil, err
		}
		return opsapi.NewStaticAgents(agents), nil
	case c.RegistryFile != "" || c.RegistryURL != "":
		w, err := registry.Watch(c.RegistryFile, c.RegistryURL, 0, log)
		if err != nil {
			return nil, err
		}
		go w.Run(ctx)
		return opsapi.RegistryAgents(w.Current), nil
	}
	return opsapi.NewStaticAgents(nil), nil
}

// Run validates c and runs the server until ctx ends (a clean exit) or a
// listener fails permanently (an error).
func Run(ctx context.Context, c Config) error {
	// size: the server's wiring in start order, then its shutdown in reverse; both halves share the listeners and contexts built here.
	if err := c.Validate(); err != nil {
		return err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stdout := c.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	authCfg := operatorauth.Config{KeysFile: c.APIKeysFile, Logger: log}
	if c.APIKeysTable != "" {
		keys, err := c.OpenKeysTable(ctx)
		if err != nil {
			return err
		}
		authCfg.Keys = keys
	}
	if c.OAuthIssuer != "" {
		jc := c.jwtConfig()
		authCfg.OAuth2 = &jc
		if c.OAuthRoles == nil {
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
	if c.runsEnabled() {
		rs, err = openRuns(ctx, c, log) // agents from the run store and the registry (apiConfig)
	} else {
		agents, err = loadAgents(ctx, c, log)
	}
	if err != nil {
		return err
	}
	var current atomic.Pointer[relay.Listener]
	apiCfg := opsapi.Config{
		Version:              c.Version,
		DeployedAgentVersion: c.DeployedAgentVersion,
		Auth:                 auth,
		Agents:               agents,
		EventInterval:        c.EventInterval,
		Logger:               log,
	}
	if c.APIKeysFile != "" || c.APIKeysTable != "" {
		apiCfg.Keys = auth
	}
	if rs != nil {
		rs.apiConfig(&apiCfg)
	}
	if !c.NoRelay {
		apiCfg.RelayConnected = func() bool {
			l := current.Load()
			return l != nil && l.Online()
		}
	}
	api, err := opsapi.New(apiCfg)
	if err != nil {
		return err
	}
	handler, err := withConsole(api)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	fatal := make(chan error, 4)
	waitRuns := func() {}
	if rs != nil {
		waitRuns = rs.start(ctx, log, fatal)
	}
	if c.LocalListen != "" {
		ln, err := net.Listen("tcp", c.LocalListen)
		if err != nil {
			return fmt.Errorf("cannot listen on %s: %w", c.LocalListen, err)
		}
		fmt.Fprintf(stdout, "relayserver listening on http://%s\n", ln.Addr())
		log.Info("serving the ops API locally", "addr", ln.Addr().String(), "version", c.Version)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fatal <- fmt.Errorf("local listener failed: %w", err)
			}
		}()
	}
	if err := serveHealth(ctx, c, log, stdout, rs, current.Load, fatal); err != nil {
		return err
	}
	if !c.NoRelay {
		cfg, err := listenerConfig(c, log)
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
			log.Info("serving the ops API through the relay", "relay", l.Addr().String(), "listener_id", l.ID(), "version", c.Version)
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
	sctx, scancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
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

func listenerConfig(c Config, log *slog.Logger) (relay.ListenerConfig, error) {
	ns, hc, err := c.Relay()
	if err != nil {
		return relay.ListenerConfig{}, err
	}
	cfg := relay.ListenerConfig{
		Namespace:        ns,
		HybridConnection: hc,
		Insecure:         c.RelayInsecure,
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
	case c.RelayAuth == "entra":
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return relay.ListenerConfig{}, fmt.Errorf("cannot set up Entra ID credential: %w", err)
		}
		cfg.Credential = relay.NewEntraCredential(cred)
	case c.KeyName != "":
		cfg.Credential = relay.NewSASCredential(c.KeyName, c.Key)
	}
	return cfg, nil
}

// listenRelay connects the relay listener, retrying failures that may pass
// (relay unreachable, service errors) with jittered backoff, and giving up
// at once on those that cannot (bad credentials, no such hybrid
// connection). Once connected, the listener reconnects by itself.
func listenRelay(ctx context.Context, cfg relay.ListenerConfig, log *slog.Logger) (*relay.Listener, error) {
	for attempt := 0; ; attempt++ {
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
		wait := retry.Backoff(time.Second, 30*time.Second, attempt)
		log.Warn("cannot connect the relay listener; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// withConsole serves the web console (package console) under /ui/ next
// to the API. Its pages hold no data: they call the API with the
// operator's credential like any client.
func withConsole(api http.Handler) (http.Handler, error) {
	ui, err := console.New(console.Config{API: api})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, console.Prefix) {
			ui.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}), nil
}
