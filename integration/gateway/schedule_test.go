package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/sessionproto"
)

// TestScheduledDelivery: a delayed send arrives no earlier than its delay
// (a second, the Storage Queue bus's unit), both ways; a delay over its
// 7-day limit is refused with a clear error instead of arriving early.
func TestScheduledDelivery(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("pinger", nil)
	a1 := g.connector("tenant-a", "a1")
	ctx := ctxFor(t, 60*time.Second)

	start := time.Now()
	id, err := svc.SendToConnector(ctx, "tenant-a", "a1", botecloud.OutMessage{Body: []byte("later"), Delay: time.Second})
	require.NoError(t, err)
	m := a1.next(t, 30*time.Second)
	assert.Equal(t, id, m.ID)
	assert.GreaterOrEqual(t, time.Since(start), time.Second)

	start = time.Now()
	id, err = a1.Send(ctx, connector.OutMessage{Body: []byte("later"), DeliverAt: start.Add(time.Second)})
	require.NoError(t, err)
	got := receive(t, svc.arrived, 30*time.Second, "message at the cloud")
	assert.Equal(t, id, got.ID)
	assert.GreaterOrEqual(t, time.Since(start), time.Second)

	_, err = svc.SendToConnector(ctx, "tenant-a", "a1", botecloud.OutMessage{Delay: 8 * 24 * time.Hour})
	require.ErrorIs(t, err, bus.ErrDelayTooLong)
	assert.ErrorContains(t, err, "Storage Queue limit of 168h0m0s")
	_, err = a1.Send(ctx, connector.OutMessage{Delay: 8 * 24 * time.Hour})
	var perr *sessionproto.Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, sessionproto.CodeInvalidMessage, perr.Code)
	assert.Contains(t, perr.Message, "Storage Queue limit")
}

// TestExpiredMessages: a message past its time to live goes to the error
// queue with reason "expired" at whichever hop finds it so (the gateway's
// routing, the connector's receive, the cloud client's receive) and never
// to a handler.
func TestExpiredMessages(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("pinger", nil)
	d := g.busDriver(t)
	ctx := ctxFor(t, 60*time.Second)

	// At routing: put on the bus as a service would, already expired.
	env := &envelope.Envelope{ID: "stale-at-routing", Kind: envelope.KindTargeted, Tenant: "tenant-a", Connector: "a1",
		From: &envelope.Identity{Service: "pinger"}, Body: []byte("stale"), CreatedAt: time.Now().UTC()}
	env.SetProtocolHeader(envelope.HeaderExpiresAt, time.Now().Add(-time.Second))
	require.NoError(t, d.Send(ctx, bus.QueueConnectors, env, nil))
	if resp, err := http.Post(g.replicas[0].URL+sessionproto.WakePath, "", nil); err == nil {
		resp.Body.Close() // else the route poll finds it
	}
	dead := deadLetters(t, d, bus.QueueConnectors, 1)
	assert.Contains(t, dead["stale-at-routing"], "expired: ")

	// At the connector: routed in time, but the connector comes online
	// after its TTL. (Two seconds: routing must not find it expired
	// already, even on a loaded machine.)
	const ttl = 2 * time.Second
	id, err := svc.SendToConnector(ctx, "tenant-a", "a2", botecloud.OutMessage{Body: []byte("stale"), TTL: ttl})
	require.NoError(t, err)
	expired := time.Now().Add(ttl) // it was created before the send returned
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a2"})
	require.Eventually(t, func() bool { return storedMessages(t, g, q) == 1 }, 10*time.Second, 20*time.Millisecond, "routed to a2's queue")
	time.Sleep(time.Until(expired) + 50*time.Millisecond)
	a2 := g.connector("tenant-a", "a2")
	assert.Equal(t, map[string]string{id: envelope.ReasonExpired}, connectorErrors(t, d, 1))
	a2.none(t, 500*time.Millisecond)
	assert.Equal(t, uint64(1), a2.Stats().Expired)

	// At the cloud.
	id, err = a2.Send(ctx, connector.OutMessage{Body: []byte("stale"), TTL: time.Millisecond})
	require.NoError(t, err)
	dead = deadLetters(t, d, bus.QueueCloud, 1)
	assert.Contains(t, dead[id], "expired: ")
	assert.Empty(t, svc.all())
	assert.Equal(t, uint64(1), svc.Stats().Expired)
}
