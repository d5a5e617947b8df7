package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
)

// TestCallRepliesReachTheCallingReplica: two replicas of one cloud
// service with the production poll settings run against the real gateway;
// replica A makes 20 calls at once while replica B reads too. Every reply
// reaches A on its first delivery (B never holds one of A's replies, so
// none is bounced towards the poison limit), and nothing is dead-lettered.
// On the shared cloud queue B took A's replies and put them back, each a
// delivery, until some were dead-lettered as poison and A's calls timed
// out.
func TestCallRepliesReachTheCallingReplica(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	production := func(c *botecloud.Config) { c.PollMin, c.PollMax = 0, 0 } // 200ms, 5s
	a := g.cloudWith("pinger", production, nil)
	b := g.cloudWith("pinger", production, nil)
	var a1 *conn
	a1 = g.connector("tenant-a", "a1", answering(&a1, "pong ", nil, nil))

	const calls = 20
	type result struct {
		body string
		m    *botecloud.Message
		err  error
	}
	results := make(chan result, calls)
	for i := range calls {
		go func() {
			body := fmt.Sprintf("ping %d", i)
			m, err := a.Call(ctxFor(t, 60*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte(body)})
			results <- result{body, m, err}
		}()
	}
	for range calls {
		r := receive(t, results, 90*time.Second, "a call's result")
		require.NoError(t, r.err, r.body)
		assert.Equal(t, "pong "+r.body, string(r.m.Body))
		assert.Equal(t, 1, r.m.DeliveryCount, "%s: the reply was delivered elsewhere first", r.body)
	}
	assert.Zero(t, a.Stats().LateReplies)
	assert.Zero(t, b.Stats().LateReplies)
	assert.Empty(t, b.all(), "replica B's handler saw nothing")

	msgs, err := g.busDriver(t).ReceiveDeadLetters(ctxFor(t, 10*time.Second), bus.QueueCloud, 32, time.Minute)
	require.NoError(t, err)
	for _, m := range msgs {
		t.Errorf("dead-lettered: %s (%s: %s)", m.Envelope.ID, m.DeadLetter.Reason, m.DeadLetter.Description)
	}
}
