package gatewayserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/gatewayserver/connqueue"
	"github.com/botehq/platform/runtime/gatewayserver/metrics"
	"github.com/botehq/platform/runtime/gatewayserver/nudge"
	"github.com/botehq/platform/runtime/gatewayserver/routing"
	"github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/gatewayserver/subscriptions"
	"github.com/botehq/platform/runtime/health"
	"github.com/botehq/platform/runtime/profiling"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	g := &gateway{cfg: cfg, log: cfg.Logger.With("replica", cfg.Replica), reg: health.NewRegistry()}
	st, claims, err := g.openBus(ctx)
	if err != nil {
		return err
	}
	defer g.closeBus(ctx)
	if err := g.wire(ctx, st, claims); err != nil {
		return err
	}
	return g.serve(ctx)
}

// withDefaults fills in what Run needs and the config left unset.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Replica == "" {
		c.Replica = envelope.NewID()[:16]
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	return c
}

// gateway is one replica while it runs: its bus, the session server, the
// router and the fan-out between replicas.
type gateway struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry

	drv    bus.Driver
	fan    *nudge.Fanout
	srv    *session.Server
	router *routing.Router
}

// openBus opens storage, the claim checks and the bus (creating the bus's
// queues when asked to).
func (g *gateway) openBus(ctx context.Context) (*storage, *claimcheck.Store, error) {
	cfg := &g.cfg
	st, err := openStorage(cfg)
	if err != nil {
		return nil, nil, err
	}
	claims, err := claimcheck.New(ctx, claimcheck.Config{
		ConnectionString: cfg.StorageConnectionString, ServiceURL: cfg.BlobURL, Credential: credentialIf(cfg.StorageConnectionString == "", cfg.Credential),
		CreateContainer: cfg.CreateResources,
	})
	if err != nil {
		return nil, nil, err
	}
	drv, err := openBus(ctx, cfg, claims, g.log)
	if err != nil {
		return nil, nil, err
	}
	if q, ok := drv.(interface{ CreateBusQueues(context.Context) error }); ok && cfg.CreateResources {
		if err := q.CreateBusQueues(ctx); err != nil {
			_ = drv.Close(ctx)
			return nil, nil, err
		}
	}
	g.drv = drv
	return st, claims, nil
}

func (g *gateway) closeBus(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := g.drv.Close(cctx); err != nil {
		g.log.Warn("cannot close bus driver", "err", err)
	}
}

// wire builds the session server, the router and the fan-out over the
// bus and storage.
func (g *gateway) wire(ctx context.Context, st *storage, claims *claimcheck.Store) error {
	cfg, log := &g.cfg, g.log
	m := metrics.New(g.reg)
	verifier, err := accesstoken.NewVerifier(ctx, accesstoken.VerifierConfig{Issuer: cfg.Issuer, JWKSURL: cfg.JWKSURL, Audience: cfg.Audience, Logger: log})
	if err != nil {
		return err
	}
	subs, err := subscriptions.New(ctx, st.tables, "")
	if err != nil {
		return err
	}
	queues, err := connqueue.New(connqueue.Config{Client: st.queues, Key: st.key, SASLifetime: cfg.SASLifetime})
	if err != nil {
		return err
	}
	signingKey, serviceKeys, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	// With a registry, routing refuses unknown connectors and sessions of
	// removed or disabled connectors end.
	var routeDir routing.Directory
	var sessionDir session.Directory
	if cfg.RegistryPath != "" {
		fd, err := newFileDirectory(cfg.RegistryPath, cfg.RegistryPoll, log)
		if err != nil {
			return err
		}
		routeDir, sessionDir = fd, fd
	}

	// The fan-out records which replica holds each session (Presence) and
	// carries nudges between replicas; its Run delivers them to srv, and
	// the router nudges srv's sessions first (nudge.LocalFirst).
	if g.fan, err = nudge.New(ctx, nudge.Config{Queues: st.queues, Tables: st.tables, Replica: cfg.Replica, Metrics: m, Logger: log}); err != nil {
		return err
	}
	g.srv, err = session.New(session.Config{
		Verifier:      sessionVerifier(verifier),
		Sender:        &cloudSender{bus: g.drv, claims: claims, key: signingKey, late: m.LateReplies, log: log},
		Uploads:       &uploads{claims: claims},
		Subscriptions: subs,
		QueueAccess:   queues,
		Presence:      g.fan,
		Directory:     sessionDir,
		Metrics:       m,
		Logger:        log,
		PingInterval:  cfg.PingInterval,

		Deliveries: !cfg.SessionsOnly, // sessions get routed messages in the frame (routing.Deliverer)

		MaxSessionsPerConnector: cfg.MaxSessionsPerConnector,
	})
	if err != nil {
		return err
	}
	g.router, err = routing.New(routing.Config{
		Bus: g.drv, Queues: queues, Subscribers: subs, Nudger: nudge.LocalFirst{Local: g.srv, Remote: g.fan}, Claims: claims, Directory: routeDir, Services: cfg.CloudServices, ServiceKeys: serviceKeys,
		Metrics: m, Logger: log, Idle: cfg.RoutePollMin, IdleMax: cfg.RoutePollMax, FanOut: cfg.FanOut, Lock: cfg.RouteLock,
		Deliverer: g.srv,
	})
	return err
}

// serve listens, runs the fan-out, the router and pprof until ctx ends or
// serving fails, then shuts down.
func (g *gateway) serve(ctx context.Context) error {
	cfg, log := &g.cfg, g.log
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("GET "+sessionproto.ConnectPath, g.srv)
	mux.HandleFunc("POST "+sessionproto.WakePath, func(w http.ResponseWriter, _ *http.Request) {
		g.router.Wake()
		w.WriteHeader(http.StatusNoContent)
	})
	health.Handle(mux, g.reg, func() error {
		if !ready.Load() {
			return errors.New("shutting down")
		}
		return nil
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.Listen, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	var wg sync.WaitGroup
	routerCtx, stopRouter := context.WithCancel(runCtx)
	defer stopRouter()
	wg.Go(func() { _ = g.fan.Run(runCtx, g.srv) })
	if cfg.PprofListen != "" {
		wg.Go(func() {
			if err := profiling.Serve(runCtx, cfg.PprofListen, log, nil); err != nil {
				log.Error("pprof is off", "err", err)
			}
		})
	}
	if !cfg.SessionsOnly {
		wg.Go(func() { _ = g.router.Run(routerCtx) })
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	ready.Store(true)
	log.Info("gateway started", "addr", ln.Addr().String(), "bus", busName(cfg.Bus), "routing", !cfg.SessionsOnly)
	fmt.Fprintf(cfg.Stdout, "listening on http://%s\n", ln.Addr())
	if cfg.OnListen != nil {
		cfg.OnListen(ln.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		runErr = fmt.Errorf("cannot serve: %w", runErr)
	}
	log.Info("gateway shutting down")
	ready.Store(false)
	g.shutdown(ctx, hs, stopRouter, func() { stopRun(); wg.Wait() })
	log.Info("gateway stopped")
	return runErr
}

// shutdown closes the sessions and the HTTP server, lets the router
// finish what it holds (stopRouter), then stops the rest (stopRest) and
// removes this replica's nudge queue, all within ShutdownTimeout.
func (g *gateway) shutdown(ctx context.Context, hs *http.Server, stopRouter, stopRest func()) {
	log := g.log
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
	defer cancel()
	var sw sync.WaitGroup
	sw.Go(func() {
		if err := g.srv.Shutdown(sctx); err != nil {
			log.Warn("sessions did not close in time", "err", err)
		}
	})
	sw.Go(func() {
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("http server did not stop in time", "err", err)
		}
	})
	stopRouter() // router finishes what it holds, then its nudges
	sw.Wait()
	done := make(chan struct{})
	go func() {
		stopRest()
		close(done)
	}()
	select {
	case <-done:
	case <-sctx.Done():
		log.Warn("router did not finish in time")
	}
	if err := g.fan.Close(sctx); err != nil {
		log.Warn("cannot remove nudge queue", "err", err)
	}
}
