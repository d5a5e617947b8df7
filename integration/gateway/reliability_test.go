package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	bote "github.com/botehq/platform/runtime/gatewayserver"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// TestLongHandlerKeepsItsMessage: a handler that runs for several
// visibility timeouts keeps its message invisible (extended through the
// gateway) and it is deleted once, after success.
func TestLongHandlerKeepsItsMessage(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("slow", nil)
	var calls atomic.Int32
	done := make(chan string, 10)
	g.connector("tenant-a", "a1", func(c *connector.Config) {
		c.Visibility = 2 * time.Second
		c.SafetyPoll = time.Second // reads the queue while the handler runs: a lapsed message would be handed out again
		c.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			calls.Add(1)
			select {
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
			done <- m.ID
			return nil
		})
	})
	id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("take your time")})
	require.NoError(t, err)
	select {
	case got := <-done:
		assert.Equal(t, id, got)
	case <-time.After(30 * time.Second):
		t.Fatal("handler never finished")
	}
	// Once the queue holds nothing, hidden or not, the message is deleted
	// and cannot come back.
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	require.Eventually(t, func() bool { return storedMessages(t, g, q) == 0 }, 10*time.Second, 100*time.Millisecond, "deleted after success")
	assert.Equal(t, int32(1), calls.Load(), "the message was never handed out twice")
}

// TestPoisonAndUndecodableGoToTheErrorPath: a message the handler keeps
// failing is retried with growing delays, then handed to the connector
// error queue; a message that is not an envelope goes there at once; the
// queue keeps flowing meanwhile.
func TestPoisonAndUndecodableGoToTheErrorPath(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("poison", nil)
	var attempts atomic.Int32
	a1 := g.connector("tenant-a", "a1", func(c *connector.Config) {
		c.MaxDequeueCount = 2
		c.RetryDelay = time.Second // handed out again after 1 s, then 2 s
		inner := c.Handler
		c.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			if string(m.Body) == "always fails" {
				attempts.Add(1)
				return errors.New("cannot handle this")
			}
			return inner.Handle(ctx, m)
		})
	})
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	raw, err := azqueue.NewQueueClientFromConnectionString(g.emu.ConnectionString, q, nil)
	require.NoError(t, err)
	_, _ = raw.Create(context.Background(), nil)
	_, err = raw.EnqueueMessage(context.Background(), "this is not an envelope", nil)
	require.NoError(t, err)

	poisonID, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("always fails")})
	require.NoError(t, err)
	okID, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("fine")})
	require.NoError(t, err)
	assert.Equal(t, okID, a1.next(t, 15*time.Second).ID, "good messages flow past the bad ones")

	d, err := storagequeue.New(storagequeue.Config{ConnectionString: g.emu.ConnectionString, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	reasons := map[string]string{}
	require.Eventually(t, func() bool {
		msgs, err := d.Receive(context.Background(), bote.QueueConnectorErrors, 10, time.Minute)
		if err != nil { // the queue appears with the first dead letter
			return false
		}
		for _, m := range msgs {
			assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, *m.Envelope.From)
			reasons[m.Envelope.Headers[envelope.HeaderDeadLetter]] = string(m.Envelope.Body)
			require.NoError(t, d.Complete(context.Background(), m))
		}
		return len(reasons) == 2
	}, 60*time.Second, 500*time.Millisecond)
	assert.Equal(t, "this is not an envelope", reasons[connector.ReasonUndecodable])
	assert.Contains(t, reasons[connector.ReasonPoison], poisonID)
	assert.Equal(t, int32(2), attempts.Load(), "handled MaxDequeueCount times, then set aside")
	require.Eventually(t, func() bool { return queueLength(t, g, q) == 0 }, 10*time.Second, 200*time.Millisecond)
}

// TestGatewayGracefulShutdown: a gateway stopping closes sessions with
// "going away"; its connectors move to another replica at once and keep
// receiving; readiness drops before the listener closes.
func TestGatewayGracefulShutdown(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	w1 := g.replicas[0]
	assert.Equal(t, "ready\n", get(t, w1.URL+"/readyz"))
	assert.Equal(t, "ok\n", get(t, w1.URL+"/healthz"))
	w2 := g.startReplica()
	svc := g.cloud("shutdown", nil)
	// The connector knows one URL, as behind a load balancer; here it is
	// w1's, so after w1 stops it must find w2: point it at a tiny proxy.
	lb := newSwitchProxy(t, w1.URL)
	a1 := g.connectorAt(&replica{URL: lb.URL()}, "tenant-a", "a1")

	lb.target.Store(w2.URL) // new connections go to w2
	require.NoError(t, w1.Proc.Stop())
	out := w1.Proc.Output()
	assert.Contains(t, out, "gateway shutting down")
	assert.Contains(t, out, "gateway stopped")
	assert.Contains(t, out, `"status":1001`, "sessions were closed with going away")

	require.Eventually(t, a1.Connected, 10*time.Second, 20*time.Millisecond)
	id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("after failover")})
	require.NoError(t, err)
	assert.Equal(t, id, a1.next(t, 15*time.Second).ID)
	resp, err := http.Get(w1.URL + "/readyz")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("stopped gateway still answers: %s", resp.Status)
	}
}

// storedMessages is the number of messages in a queue, visible or hidden
// (queueLength peeks: it sees visible ones only), -1 if unknown.
func storedMessages(t *testing.T, g *gateway, name string) int {
	t.Helper()
	q, err := azqueue.NewQueueClientFromConnectionString(g.emu.ConnectionString, name, nil)
	require.NoError(t, err)
	p, err := q.GetProperties(context.Background(), nil)
	if err != nil || p.ApproximateMessagesCount == nil {
		return -1
	}
	return int(*p.ApproximateMessagesCount)
}
