package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/sessionproto"
)

// A routed message goes to the connector's session in a deliver frame,
// hidden on its queue for as long as the session asked. A session that
// takes the frame and goes away without handling it loses nothing: the
// message is visible again after that, and the connector's next session
// reads its queue then.
func TestDeliveryLostWithItsSessionIsDeliveredLater(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("lossy", nil)
	_, status := g.dialRawQuery(t, g.token(t, "tenant-a", "a1"), "?"+sessionproto.DeliverParam+"=1")
	assert.Equal(t, 400, status, "less than the shortest visibility")
	raw, _ := g.dialRawQuery(t, g.token(t, "tenant-a", "a1"), "?"+sessionproto.DeliverParam+"=2")
	id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("catch me")})
	require.NoError(t, err)
	f := raw.readReply()
	require.Equal(t, sessionproto.TypeDeliver, f.Type, "%+v", f)
	require.Contains(t, f.Delivery.Text, id)
	assert.Equal(t, 2, f.Delivery.VisibilitySeconds)
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	assert.Equal(t, 1, storedMessages(t, g, q), "on the queue before it was delivered")
	_ = raw.ws.CloseNow() // gone without handling or releasing it

	c := g.connector("tenant-a", "a1", func(c *connector.Config) { c.Visibility = 2 * time.Second })
	m := c.next(t, 10*time.Second) // the visibility and the read after it
	assert.Equal(t, id, m.ID)
	c.none(t, 3*time.Second)
}

// A delivery that arrives while every handler slot is busy is released at
// once (not left hidden for the delivery visibility) and handled when a
// slot is free.
func TestDeliveryWithNoFreeSlotIsReleased(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("busy", nil)
	unblock, started := make(chan struct{}), make(chan struct{})
	handled := make(chan string, 10)
	g.connector("tenant-a", "a1", func(c *connector.Config) {
		c.Concurrency = 1
		c.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			if string(m.Body) == "first" {
				close(started)
				<-unblock
			}
			handled <- string(m.Body)
			return nil
		})
	})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release) // before the connector's: it waits for its handlers
	send := func(body string) {
		_, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte(body)})
		require.NoError(t, err)
	}
	send("first")
	receive(t, started, 15*time.Second, "first message at the handler") // it holds the only slot
	send("second")
	// Delivered in a frame (hidden on the queue for the delivery's
	// visibility, 60 s) and released meanwhile: visible on the queue again.
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	require.Eventually(t, func() bool {
		return g.replicas[0].counter(t, `bote_gateway_nudges_total{to="delivered"}`) == 2
	}, 15*time.Second, 20*time.Millisecond, "both messages are delivered in frames")
	require.Eventually(t, func() bool { return queueLength(t, g, q) == 1 },
		15*time.Second, 20*time.Millisecond, "the second message is released")
	release()
	for _, want := range []string{"first", "second"} {
		select {
		case got := <-handled:
			assert.Equal(t, want, got)
		case <-time.After(10 * time.Second): // far below the 60 s visibility it would stay hidden
			t.Fatalf("%q was not handled", want)
		}
	}
}
