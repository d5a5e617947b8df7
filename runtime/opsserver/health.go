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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/botehq/platform/runtime/health"
	"github.com/botehq/platform/runtime/profiling"
	"github.com/botehq/platform/runtime/relay"
)

// metricPrefix starts every series of the ops server; legacyMetricPrefix
// starts the same series under their names from before the binary was
// renamed (relayserver), still exported for one more release so that
// dashboards and alerts keep working while they move (docs/conventions.md).
const (
	metricPrefix       = "bote_opsserver_"
	legacyMetricPrefix = "bote_relayserver_"
)

// registerFunc registers the series name, a counter or a gauge read from
// value at scrape time, under metricPrefix and under legacyMetricPrefix:
// one value, two names.
func registerFunc(reg prometheus.Registerer, kind prometheus.ValueType, name, help string, value func() float64) {
	for _, s := range []struct{ name, help string }{
		{metricPrefix + name, help},
		{legacyMetricPrefix + name, strings.TrimSuffix(help, ".") + " (deprecated name of " + metricPrefix + name + ")."},
	} {
		if kind == prometheus.CounterValue {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: s.name, Help: s.help}, value))
		} else {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: s.name, Help: s.help}, value))
		}
	}
}

// serveHealth serves --health-listen (GET /healthz, /readyz, /metrics, as
// the gateway does) and --pprof-listen (loopback only) until ctx ends. The
// ops API itself is never served there.
func serveHealth(ctx context.Context, c Config, log *slog.Logger, stdout io.Writer, rs *runsStack, listener func() *relay.Listener, fatal chan<- error) error {
	if c.PprofListen != "" {
		go func() {
			if err := profiling.Serve(ctx, c.PprofListen, log, nil); err != nil {
				log.Error("pprof is off", "err", err)
			}
		}()
	}
	if c.HealthListen == "" {
		return nil
	}
	reg := health.NewRegistry()
	relayOnline := func() bool {
		l := listener()
		return l != nil && l.Online()
	}
	registerFunc(reg, prometheus.GaugeValue, "relay_online", "1 while the relay listener is connected (always 0 with --no-relay).", func() float64 {
		if relayOnline() {
			return 1
		}
		return 0
	})
	if rs != nil {
		d := rs.dispatcher
		registerFunc(reg, prometheus.CounterValue, "agent_messages_refused_total", "Messages refused because their sender is not a registered agent of its tenant.",
			func() float64 { return float64(d.RoleRefusals()) })
		registerFunc(reg, prometheus.CounterValue, "stale_claim_messages_total", "Agents' messages of a claim that is no longer open, dropped quietly.",
			func() float64 { return float64(d.StaleDropped()) })
	}
	mux := http.NewServeMux()
	health.Handle(mux, reg, func() error {
		if !c.NoRelay && !relayOnline() {
			return errors.New("the relay listener is not connected")
		}
		return nil
	})
	ln, err := net.Listen("tcp", c.HealthListen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", c.HealthListen, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	fmt.Fprintf(stdout, "opsserver health check on http://%s/healthz\n", ln.Addr())
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("health listener failed: %w", err)
		}
	}()
	return nil
}
