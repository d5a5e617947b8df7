package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// BenchmarkIdleConnectorStorageRequests counts, in Azurite's request log,
// the storage requests an idle connected connector causes in a 12 s
// window: only its safety poll should touch storage (pings, token and SAS
// renewals do not). It reports the per-hour figure at the default 5-minute
// safety poll against its baseline, a connector polling every second
// (3,600 per hour), and fails if anything but the safety poll touched
// storage. A measurement, so a benchmark (make bench), not part of make
// test: `go test ./gateway/ -run '^$' -bench IdleConnector -benchtime 1x`.
func BenchmarkIdleConnectorStorageRequests(b *testing.B) {
	g := newFleetGateway(b, nil)
	const poll = 2 * time.Second
	g.connector("tenant-a", "a1", func(c *connector.Config) { c.SafetyPoll = poll })
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	time.Sleep(time.Second) // connect drain done
	for range b.N {
		before := countRequests(g, q)
		const window = 12 * time.Second
		time.Sleep(window)
		n := countRequests(g, q) - before
		polls := int(window / poll)
		perHour := 12 * max(1, n/max(1, polls))
		b.Logf("idle connector: %d storage requests in %s with a %s safety poll (%d polls); at the default 5m poll that is %d requests/hour vs 3600 for a 1 s poller (%.2f%%)",
			n, window, poll, polls, perHour, float64(perHour)/36)
		b.ReportMetric(float64(perHour), "requests/hour")
		b.ReportMetric(3600, "baseline-requests/hour")
		require.GreaterOrEqual(b, n, polls-1, "the safety poll runs")
		assert.LessOrEqual(b, n, polls+1, "nothing but the safety poll touches storage")
	}
}

// countRequests counts Azurite request log lines about the connector:
// its queue, or its rows (presence, subscriptions).
func countRequests(g *gateway, queue string) int {
	n := 0
	for _, line := range strings.Split(g.emu.Logs(), "\n") {
		if strings.Contains(line, "HTTP/1.1\"") && (strings.Contains(line, "/"+queue) || strings.Contains(line, "RowKey='a1'")) {
			n++
		}
	}
	return n
}

// BenchmarkIdleGatewayStorageRequests counts every request in Azurite's
// log during 30 s while one gateway replica (default flags, routing and
// nudges, no sessions) and a cloud service that sends nothing stand idle,
// after 15 s for the polls to back off; it reports the per-hour figure of
// the gateway's requests (the bus queue bote-connectors and its nudge
// queue) against the goal of 3,600 (a 1-second poller). `go test
// ./gateway/ -run '^$' -bench IdleGateway -benchtime 1x`.
func BenchmarkIdleGatewayStorageRequests(b *testing.B) {
	g := newFleetGateway(b, nil)
	for range b.N {
		time.Sleep(15 * time.Second)
		count := func() int {
			n := 0
			for _, line := range strings.Split(g.emu.Logs(), "\n") {
				if strings.Contains(line, "HTTP/1.1\"") && (strings.Contains(line, "/bote-connectors/") || strings.Contains(line, "/bote-nudge-")) {
					n++
				}
			}
			return n
		}
		before := count()
		const window = 30 * time.Second
		time.Sleep(window)
		perHour := (count() - before) * int(time.Hour/window)
		b.Logf("idle gateway: %d storage requests/hour (bus queue polls and nudge queue polls) vs a 1 s poller's 3600", perHour)
		b.ReportMetric(float64(perHour), "requests/hour")
		assert.LessOrEqual(b, perHour, 3600)
	}
}
