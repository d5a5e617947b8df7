package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/storagequeue"
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

// TestReplyToAStoppedCallerIsLate: replica A calls, then stops (its Run
// ends and its reply queue goes, and the call returns ErrNotRunning)
// before the connector answers. The
// gateway finds no queue for the reply and discards it as late
// (bote_gateway_late_replies_total); it never reaches replica B or the
// shared cloud queue, so nothing bounces or is dead-lettered.
func TestReplyToAStoppedCallerIsLate(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	b := g.cloud("pinger", nil)
	ids, release := make(chan string, 1), make(chan struct{})
	var a1 *conn
	a1 = g.connector("tenant-a", "a1", answering(&a1, "pong ", ids, release))

	d, err := storagequeue.New(storagequeue.Config{ConnectionString: g.emu.ConnectionString, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	a, err := botecloud.New(botecloud.Config{Bus: d, Service: "pinger", WakeURL: g.replicas[0].URL, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- a.Run(runCtx, botecloud.HandlerFunc(func(context.Context, *botecloud.Message) error { return nil }))
	}()
	callCtx, giveUp := context.WithTimeout(context.Background(), 60*time.Second)
	defer giveUp()
	result := make(chan error, 1)
	go func() {
		_, err := a.Call(callCtx, "tenant-a", "a1", botecloud.OutMessage{Body: []byte("ping")})
		result <- err
	}()
	callID := receive(t, ids, 30*time.Second, "the call at the connector")
	_, ok := bus.ReplyQueueOf(callID)
	require.True(t, ok, "call id %q names no reply queue", callID)

	stop()
	require.NoError(t, receive(t, stopped, 60*time.Second, "A's Run to end"))
	require.ErrorIs(t, receive(t, result, 10*time.Second, "A's call to end"), botecloud.ErrNotRunning)
	close(release)

	require.Eventually(t, func() bool { return g.replicas[0].metric(t, "bote_gateway_late_replies_total") == 1 }, 30*time.Second, 50*time.Millisecond)
	assert.Zero(t, b.Stats().LateReplies, "replica B never saw the reply")
	assert.Empty(t, b.all())
	msgs, err := g.busDriver(t).ReceiveDeadLetters(ctxFor(t, 10*time.Second), bus.QueueCloud, 32, time.Minute)
	require.NoError(t, err)
	assert.Empty(t, msgs, "nothing dead-lettered")
}
