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
		w, err := registry.Watch(c.RegistryFile, c.RegistryURL, c.RegistryPoll, log)
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

	s := &server{c: c, log: log, stdout: stdout, fatal: make(chan error, 4)}
	if err := s.open(ctx); err != nil {
		return err
	}
	waitRuns := func() {}
	if s.runs != nil {
		waitRuns = s.runs.start(ctx, log, s.fatal)
	}
	if err := s.listen(ctx); err != nil {
		return err
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-s.fatal:
		log.Error("shutting down", "err", runErr)
	}
	s.shutdown()
	cancel()
	waitRuns()
	return runErr
}

// server is the ops server while it runs: the API, the HTTP server in
// front of it and the relay listener once it connected.
type server struct {
	c      Config
	log    *slog.Logger
	stdout io.Writer
	fatal  chan error // a listener or a runs part failed for good

	runs  *runsStack // nil without runs
	api   *opsapi.Server
	http  *http.Server
	relay atomic.Pointer[relay.Listener]
}

// open authenticates operators, opens the runs (or the agent list without
// them) and builds the API with the console beside it.
func (s *server) open(ctx context.Context) error {
	auth, err := openAuth(ctx, s.c, s.log)
	if err != nil {
		return err
	}
	var agents opsapi.AgentStore
	if s.c.runsEnabled() {
		s.runs, err = openRuns(ctx, s.c, s.log) // agents from the run store and the registry (apiConfig)
	} else {
		agents, err = loadAgents(ctx, s.c, s.log)
	}
	if err != nil {
		return err
	}
	apiCfg := opsapi.Config{
		Version:              s.c.Version,
		DeployedAgentVersion: s.c.DeployedAgentVersion,
		Auth:                 auth,
		Agents:               agents,
		EventInterval:        s.c.EventInterval,
		Logger:               s.log,
	}
	if s.c.APIKeysFile != "" || s.c.APIKeysTable != "" {
		apiCfg.Keys = auth
	}
	if s.runs != nil {
		s.runs.apiConfig(&apiCfg)
	}
	if !s.c.NoRelay {
		apiCfg.RelayConnected = s.relayOnline
	}
	if s.api, err = opsapi.New(apiCfg); err != nil {
		return err
	}
	handler, err := withConsole(s.api)
	if err != nil {
		return err
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// openAuth authenticates operators with API keys (a file or a table) and
// OAuth2 tokens, as configured; key changes take effect while it runs.
func openAuth(ctx context.Context, c Config, log *slog.Logger) (*operatorauth.Authenticator, error) {
	authCfg := operatorauth.Config{KeysFile: c.APIKeysFile, Logger: log}
	if c.APIKeysTable != "" {
		keys, err := c.OpenKeysTable(ctx)
		if err != nil {
			return nil, err
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
		return nil, err
	}
	every := c.APIKeysRecheck
	if every == 0 {
		every = DefaultAPIKeysRecheck
	}
	go auth.Watch(ctx, every)
	return auth, nil
}

func (s *server) relayOnline() bool {
	l := s.relay.Load()
	return l != nil && l.Online()
}

// listen serves the API on --local-listen and through the relay, and
// health on --health-listen; a listener that fails for good says so on
// s.fatal.
func (s *server) listen(ctx context.Context) error {
	if s.c.LocalListen != "" {
		ln, err := net.Listen("tcp", s.c.LocalListen)
		if err != nil {
			return fmt.Errorf("cannot listen on %s: %w", s.c.LocalListen, err)
		}
		fmt.Fprintf(s.stdout, "opsserver listening on http://%s\n", ln.Addr())
		s.log.Info("serving the ops API locally", "addr", ln.Addr().String(), "version", s.c.Version)
		go func() {
			if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fatal <- fmt.Errorf("local listener failed: %w", err)
			}
		}()
	}
	if err := serveHealth(ctx, s.c, s.log, s.stdout, s.runs, s.relay.Load, s.fatal); err != nil {
		return err
	}
	if s.c.NoRelay {
		return nil
	}
	cfg, err := listenerConfig(s.c, s.log)
	if err != nil {
		return err
	}
	go func() {
		l, err := listenRelay(ctx, cfg, s.log)
		if err != nil {
			s.fatal <- err
			return
		}
		s.relay.Store(l)
		fmt.Fprintf(s.stdout, "opsserver listening on sb://%s (relay listener id %s)\n", l.Addr(), l.ID())
		s.log.Info("serving the ops API through the relay", "relay", l.Addr().String(), "listener_id", l.ID(), "version", s.c.Version)
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fatal <- fmt.Errorf("relay listener stopped: %w", err)
		}
	}()
	return nil
}

// shutdown ends the API's streams, lets requests finish (up to
// --shutdown-timeout) and closes the relay listener.
func (s *server) shutdown() {
	s.api.Shutdown()
	sctx, scancel := context.WithTimeout(context.Background(), s.c.ShutdownTimeout)
	defer scancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("requests still running at shutdown deadline", "err", err)
		s.http.Close()
	}
	if l := s.relay.Load(); l != nil {
		l.Close()
	}
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
