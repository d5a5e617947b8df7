package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cloud"
)

// TestDeliveryLatency measures cloud→connector delivery (cloud send →
// bote-connectors → router → connector queue → nudge → connector read →
// handler) on loopback, one message at a time, and logs p50/p99. The
// connector's safety poll is an hour: every delivery rides the nudge.
// Figures depend on the router's poll bounds (here 5ms..50ms) and on the
// machine; the assertion only guards against the nudge path breaking.
func TestDeliveryLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	g := newGateway(t, "--route-poll-min", "5ms", "--route-poll-max", "50ms")
	svc := g.cloud("latency", nil)
	a1 := g.connector("tenant-a", "a1")
	const n = 40
	var took []time.Duration
	for i := range n + 5 {
		start := time.Now()
		id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", cloud.Outgoing{Body: []byte("t")})
		require.NoError(t, err)
		m := a1.next(t, 10*time.Second)
		require.Equal(t, id, m.ID)
		if i >= 5 { // warm-up
			took = append(took, time.Since(start))
		}
	}
	slices.Sort(took)
	p50, p99 := took[n/2], took[n*99/100]
	t.Logf("cloud→connector latency over %d messages: p50 %s, p99 %s, min %s, max %s", n, p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[0].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
	assert.Less(t, p50, 2*time.Second)
}
