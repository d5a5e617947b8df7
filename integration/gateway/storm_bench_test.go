package gateway

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/connector"
)

// BenchmarkReconnectStorm: N connectors (runtime/connector, each with its
// own HTTP transport as if in its own process; BOTE_BENCH_CONNECTORS,
// comma-separated, default 1000) hold sessions on one gateway replica, which is
// killed (SIGKILL, as a crash or an OOM kill) and started again on the same
// address after BOTE_BENCH_RESTART_DELAY (default 3s, a container
// restart). It reports how long after the new gateway was ready (its
// "listening on" line) each connector was back, against the goal of all
// back within 5 s, and asserts that the new gateway's sessions gauge is
// exactly N once they are. Connectors reuse their cached tokens, so the idp
// sees no storm. `go test ./gateway/ -run '^$' -bench ReconnectStorm
// -benchtime 1x -timeout 30m`.
func BenchmarkReconnectStorm(b *testing.B) {
	for _, n := range envCounts(b, "BOTE_BENCH_CONNECTORS", 1000) {
		b.Run(fmt.Sprintf("connectors=%d", n), func(b *testing.B) { benchReconnectStorm(b, n) })
	}
}

func benchReconnectStorm(b *testing.B, n int) {
	const tenant = "storm"
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%05d", i)
	}
	delay := 3 * time.Second
	if v := envDuration(b, "BOTE_BENCH_RESTART_DELAY"); v > 0 {
		delay = v
	}
	g := newFleetGateway(b, map[string][]string{tenant: ids})
	setup := time.Now()
	clients := startFleet(b, g, tenant, ids, "", connector.HandlerFunc(func(context.Context, *connector.Message) error { return nil }))
	b.Logf("%d connectors connected in %s", n, time.Since(setup).Round(time.Second))
	u, err := url.Parse(g.replicas[0].URL)
	require.NoError(b, err)
	for b.Loop() {
		w := g.replicas[len(g.replicas)-1]
		w.Proc.Kill()
		require.Eventually(b, func() bool {
			for _, c := range clients {
				if c.Connected() {
					return false
				}
			}
			return true
		}, time.Minute, 10*time.Millisecond, "every connector saw its session end")
		time.Sleep(delay)
		w2 := g.startReplica("--listen", u.Host) // returns once it is listening
		ready := time.Now()
		back := make([]time.Duration, len(clients))
		pending := len(clients)
		deadline := ready.Add(2 * time.Minute)
		for pending > 0 && time.Now().Before(deadline) {
			for i, c := range clients {
				if back[i] == 0 && c.Connected() {
					back[i] = time.Since(ready)
					pending--
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		require.Zero(b, pending, "connectors still away 2 minutes after the new gateway was ready")
		slices.Sort(back)
		p50, p99, last := back[n/2], back[n*99/100], back[n-1]
		b.Logf("%d connectors back after the new gateway was ready (restart delay %s): p50 %s, p99 %s, all %s (goal: all ≤ 5s)",
			n, delay, p50.Round(time.Millisecond), p99.Round(time.Millisecond), last.Round(time.Millisecond))
		b.ReportMetric(last.Seconds(), "s-all-back")
		b.ReportMetric(p50.Seconds(), "s-p50-back")
		// The gauge counts what the gateway holds; it must settle at exactly n.
		require.Eventually(b, func() bool { return w2.metric(b, "bote_gateway_sessions") == float64(n) }, 30*time.Second, 100*time.Millisecond,
			"sessions gauge %v, want %d", w2.metric(b, "bote_gateway_sessions"), n)
		time.Sleep(2 * time.Second)
		assert.Equal(b, float64(n), w2.metric(b, "bote_gateway_sessions"), "sessions gauge holds at the connector count")
	}
}

// envDuration reads a duration from the environment variable name, 0 if
// unset.
func envDuration(b *testing.B, name string) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	require.NoError(b, err, name)
	return d
}
