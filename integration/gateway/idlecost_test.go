package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/queuename"
)

// TestIdleConnectorStorageRequests counts, in Azurite's request log, the
// storage requests an idle connected connector causes: only its safety
// poll should touch storage (pings, token and SAS renewals do not). It
// logs the per-hour figure at the default 5-minute safety poll against a
// connector polling every second (3,600 per hour).
func TestIdleConnectorStorageRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	g := newGateway(t)
	const poll = 2 * time.Second
	g.connector("tenant-a", "a1", func(c *connector.Config) { c.SafetyPoll = poll })
	q, _ := queuename.For("tenant-a", "a1")
	time.Sleep(time.Second) // connect drain done
	before := countRequests(g, q)
	const window = 12 * time.Second
	time.Sleep(window)
	n := countRequests(g, q) - before
	polls := int(window / poll)
	t.Logf("idle connector: %d storage requests in %s with a %s safety poll (%d polls); at the default 5m poll that is %d requests/hour vs 3600 for a 1 s poller (%.2f%%)",
		n, window, poll, polls, 12*max(1, n/max(1, polls)), float64(12*max(1, n/max(1, polls)))/36)
	require.GreaterOrEqual(t, n, polls-1, "the safety poll runs")
	assert.LessOrEqual(t, n, polls+1, "nothing but the safety poll touches storage")
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
