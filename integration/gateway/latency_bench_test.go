package gateway

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/queuename"
)

// BenchmarkDeliveryLatency measures cloud→connector delivery (cloud send
// → bote-connectors → router → connector queue → nudge → connector read →
// handler) on loopback, one message at a time, 40 per iteration after 5
// of warm-up, and reports p50/p99. It also counts, in Azurite's request
// log, the storage operations per routed message against the raw
// put+get+delete baseline of 3: every request on the connector's queue,
// plus the bus queue's put and delete of each message and the one receive
// that returned it (the router's empty polls of bote-connectors are its
// idle cost, not a per-message one). The connector's safety poll is an hour:
// every delivery rides the nudge. The worker runs with its default flags:
// the cloud service wakes the router after each send (its route poll is
// 5 s). Figures depend on the machine; the assertion only guards
// against the nudge path breaking. A measurement, so a benchmark (make
// bench): `go test ./gateway/ -run '^$' -bench DeliveryLatency -benchtime 1x`.
func BenchmarkDeliveryLatency(b *testing.B) {
	g := newFleetGateway(b, nil)
	svc := g.cloud("latency", nil)
	a1 := g.connector("tenant-a", "a1")
	q, _ := queuename.For("tenant-a", "a1")
	const n = 40
	for range b.N {
		var took []time.Duration
		var before int
		for i := range n + 5 {
			if i == 5 {
				time.Sleep(200 * time.Millisecond) // warm-up's requests are in the log
				before = routedRequests(g, q)
			}
			start := time.Now()
			id, err := svc.SendToConnector(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.Outgoing{Body: []byte("t")})
			require.NoError(b, err)
			m := a1.next(b, 10*time.Second)
			require.Equal(b, id, m.ID)
			if i >= 5 { // warm-up
				took = append(took, time.Since(start))
			}
		}
		time.Sleep(500 * time.Millisecond) // the last delete is in the log
		perMsg := float64(routedRequests(g, q)-before+n) / n
		b.Logf("storage operations per routed message: %.2f (raw put+get+delete: 3; ratio %.2f)", perMsg, perMsg/3)
		b.ReportMetric(perMsg, "storage-ops/msg")
		slices.Sort(took)
		p50, p99 := took[n/2], took[n*99/100]
		b.Logf("cloud→connector latency over %d messages: p50 %s, p99 %s, min %s, max %s", n, p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[0].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		assert.Less(b, p50, 2*time.Second)
	}
}

// routedRequests counts Azurite request log lines that routing makes per
// message: any request on the connector's queue, and puts and deletes on
// the bus queue bote-connectors.
func routedRequests(g *gateway, queue string) int {
	n := 0
	for _, line := range strings.Split(g.emu.Logs(), "\n") {
		if !strings.Contains(line, "HTTP/1.1\"") {
			continue
		}
		if strings.Contains(line, "/"+queue+"/") || strings.Contains(line, "/"+queue+"?") ||
			strings.Contains(line, "/bote-connectors/") && (strings.Contains(line, "\"POST ") || strings.Contains(line, "\"DELETE ")) {
			n++
		}
	}
	return n
}
