package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
)

// BenchmarkCallRoundTrip measures botecloud.Client.Call to a connector
// (request → bote-connectors → router → connector queue → handler →
// Reply over the session → bote-cloud → the waiting Call) on loopback,
// one at a time, 40 per iteration after 5 of warm-up, against the
// send-and-receive baseline of the same hops measured in the same run: a
// SendToConnector whose handler answers with an ordinary Send, timed until
// the answer reaches the cloud handler. Both report p50/p99. A
// measurement, so a benchmark (make bench): `go test ./gateway/ -run '^$'
// -bench CallRoundTrip -benchtime 1x`.
func BenchmarkCallRoundTrip(b *testing.B) {
	g := newFleetGateway(b, nil)
	svc := g.cloud("caller", nil)
	var a1 *conn
	a1 = g.connector("tenant-a", "a1", func(cfg *connector.Config) {
		cfg.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			if !m.Deadline.IsZero() {
				_, err := a1.Reply(ctx, m, connector.OutMessage{Body: []byte("pong")})
				return err
			}
			_, err := a1.Send(ctx, connector.OutMessage{CorrelationID: m.ID, Body: []byte("pong")})
			return err
		})
	})
	const n = 40
	sendAndReceive := func() time.Duration {
		start := time.Now()
		id, err := svc.SendToConnector(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.Outgoing{Body: []byte("ping")})
		require.NoError(b, err)
		select {
		case m := <-svc.arrived:
			require.Equal(b, id, m.CorrelationID)
		case <-time.After(10 * time.Second):
			b.Fatal("no answer within 10s")
		}
		return time.Since(start)
	}
	call := func() time.Duration {
		start := time.Now()
		reply, err := svc.Call(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.Outgoing{Body: []byte("ping")})
		require.NoError(b, err)
		require.Equal(b, "pong", string(reply.Body))
		return time.Since(start)
	}
	for range b.N {
		for range 5 { // warm-up: queues created, SAS granted
			sendAndReceive()
			call()
		}
		var base, calls []time.Duration
		for range n { // interleaved, so both see the same machine
			base = append(base, sendAndReceive())
			calls = append(calls, call())
		}
		slices.Sort(base)
		slices.Sort(calls)
		p := func(d []time.Duration, q int) time.Duration { return d[len(d)*q/100] }
		b.Logf("call round trip over %d: p50 %s, p99 %s; send-and-receive baseline: p50 %s, p99 %s",
			n, p(calls, 50).Round(100*time.Microsecond), p(calls, 99).Round(100*time.Microsecond),
			p(base, 50).Round(100*time.Microsecond), p(base, 99).Round(100*time.Microsecond))
		b.ReportMetric(float64(p(calls, 50).Microseconds())/1000, "call-p50-ms")
		b.ReportMetric(float64(p(calls, 99).Microseconds())/1000, "call-p99-ms")
		b.ReportMetric(float64(p(base, 50).Microseconds())/1000, "base-p50-ms")
		b.ReportMetric(float64(p(base, 99).Microseconds())/1000, "base-p99-ms")
	}
}
