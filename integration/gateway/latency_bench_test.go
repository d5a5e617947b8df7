package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
)

// BenchmarkDeliveryLatency measures cloud→connector delivery (cloud send
// → bote-connectors → router → connector queue → nudge → connector read →
// handler) on loopback, one message at a time, 40 per iteration after 5
// of warm-up, and reports p50/p99. The connector's safety poll is an hour:
// every delivery rides the nudge. Figures depend on the router's poll
// bounds (here 5ms..50ms) and on the machine; the assertion only guards
// against the nudge path breaking. A measurement, so a benchmark (make
// bench): `go test ./gateway/ -run '^$' -bench DeliveryLatency -benchtime 1x`.
func BenchmarkDeliveryLatency(b *testing.B) {
	g := newFleetGateway(b, nil, "--route-poll-min", "5ms", "--route-poll-max", "50ms")
	svc := g.cloud("latency", nil)
	a1 := g.connector("tenant-a", "a1")
	const n = 40
	for range b.N {
		var took []time.Duration
		for i := range n + 5 {
			start := time.Now()
			id, err := svc.SendToConnector(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.Outgoing{Body: []byte("t")})
			require.NoError(b, err)
			m := a1.next(b, 10*time.Second)
			require.Equal(b, id, m.ID)
			if i >= 5 { // warm-up
				took = append(took, time.Since(start))
			}
		}
		slices.Sort(took)
		p50, p99 := took[n/2], took[n*99/100]
		b.Logf("cloud→connector latency over %d messages: p50 %s, p99 %s, min %s, max %s", n, p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[0].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		assert.Less(b, p50, 2*time.Second)
	}
}
