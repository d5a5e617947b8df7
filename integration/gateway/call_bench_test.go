package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
)

// BenchmarkCallRoundTrip measures botecloud.Client.Call to a connector
// (request → bote-connectors → router → connector queue → handler →
// Reply over the session → bote-cloud → the waiting Call) and
// connector.Client.Call to the cloud (the same hops the other way round)
// on loopback, one at a time, 40 each per iteration after 5 of warm-up,
// against the send-and-receive baseline of the same hops measured in the
// same run, interleaved: a send whose handler answers with an ordinary
// send, timed until the answer reaches the sender's handler. All report
// p50/p99. A
// measurement, so a benchmark (make bench): `go test ./gateway/ -run '^$'
// -bench CallRoundTrip -benchtime 1x`.
func BenchmarkCallRoundTrip(b *testing.B) {
	g := newFleetGateway(b, nil)
	// The service answers a connector's call with Reply and an ordinary
	// message with SendToConnector (the reverse baseline).
	svc := g.cloud("caller", func(ctx context.Context, c *cloudService, m *botecloud.Message) error {
		if !m.Deadline.IsZero() {
			_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong")})
			return err
		}
		if m.CorrelationID != "" {
			return nil // an answer of the forward baseline
		}
		_, err := c.SendToConnector(ctx, m.From.Tenant, m.From.Connector, botecloud.OutMessage{CorrelationID: m.ID, Body: []byte("pong")})
		return err
	})
	answers := make(chan *connector.Message, 1)
	var a1 *conn
	a1 = g.connector("tenant-a", "a1", func(cfg *connector.Config) {
		cfg.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			switch {
			case !m.Deadline.IsZero():
				_, err := a1.Reply(ctx, m, connector.OutMessage{Body: []byte("pong")})
				return err
			case m.CorrelationID != "":
				answers <- m // an answer of the reverse baseline
				return nil
			}
			_, err := a1.Send(ctx, connector.OutMessage{CorrelationID: m.ID, Body: []byte("pong")})
			return err
		})
	})
	const n = 40
	measure := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	rounds := []struct {
		name string
		f    func()
	}{
		{"cloud call", func() {
			reply, err := svc.Call(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("ping")})
			require.NoError(b, err)
			require.Equal(b, "pong", string(reply.Body))
		}},
		{"cloud send-and-receive", func() {
			id, err := svc.SendToConnector(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("ping")})
			require.NoError(b, err)
			for m := range svc.arrived {
				if m.CorrelationID == id {
					return
				}
			}
		}},
		{"connector call", func() {
			reply, err := a1.Call(ctxFor(b, 10*time.Second), "caller", connector.OutMessage{Body: []byte("ping")})
			require.NoError(b, err)
			require.Equal(b, "pong", string(reply.Body))
		}},
		{"connector send-and-receive", func() {
			id, err := a1.Send(ctxFor(b, 10*time.Second), connector.OutMessage{Body: []byte("ping")})
			require.NoError(b, err)
			select {
			case m := <-answers:
				require.Equal(b, id, m.CorrelationID)
			case <-time.After(10 * time.Second):
				b.Fatal("no answer within 10s")
			}
		}},
	}
	for range b.N {
		for range 5 { // warm-up: queues created, SAS granted
			for _, r := range rounds {
				r.f()
			}
		}
		took := make([][]time.Duration, len(rounds))
		for k := range n {
			// Interleaved, so all see the same machine, and in alternating
			// order: the first round after the direction changes waits on a
			// receive loop that has backed off (bote-cloud is polled), and
			// each round takes that place as often as the others.
			for j := range rounds {
				i := j
				if k%2 == 1 {
					i = len(rounds) - 1 - j
				}
				took[i] = append(took[i], measure(rounds[i].f))
			}
		}
		for i, r := range rounds {
			d := took[i]
			slices.Sort(d)
			p50, p99 := d[n/2], d[n*99/100]
			b.Logf("%s over %d: p50 %s, p99 %s", r.name, n, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond))
			unit := strings.ReplaceAll(r.name, " ", "-")
			b.ReportMetric(float64(p50.Microseconds())/1000, unit+"-p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, unit+"-p99-ms")
		}
	}
}
