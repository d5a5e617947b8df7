package routing

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/sessionproto"
)

// hiddenQueues records hidden puts and releases on top of fakeQueues.
type hiddenQueues struct {
	*fakeQueues
	hidden   map[ids.ConnectorID][]sessionproto.Delivery
	released []string
}

func (q *hiddenQueues) EnqueueHidden(_ context.Context, id ids.ConnectorID, text string, vis time.Duration) (sessionproto.Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := sessionproto.Delivery{MessageID: "q-" + id.Connector, PopReceipt: "pop", Text: text, VisibilitySeconds: int(vis / time.Second)}
	q.hidden[id] = append(q.hidden[id], d)
	return d, nil
}

func (q *hiddenQueues) Release(_ context.Context, _ ids.ConnectorID, d sessionproto.Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.released = append(q.released, d.MessageID)
	return nil
}

// fakeDeliverer has sessions taking deliveries for some connectors; a
// write fails for those in failing.
type fakeDeliverer struct {
	mu        sync.Mutex
	sessions  map[ids.ConnectorID]bool
	failing   map[ids.ConnectorID]bool
	delivered map[ids.ConnectorID][]sessionproto.Delivery
	gone      bool // the session goes between Deliverable and Deliver
}

func (d *fakeDeliverer) Deliverable(id ids.ConnectorID) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return 7 * time.Second, d.sessions[id]
}

func (d *fakeDeliverer) Deliver(id ids.ConnectorID, m sessionproto.Delivery, failed func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return false
	}
	d.delivered[id] = append(d.delivered[id], m)
	if d.failing[id] {
		go failed()
	}
	return true
}

func newDeliverHarness(t *testing.T) (*harness, *hiddenQueues, *fakeDeliverer) {
	t.Helper()
	var q *hiddenQueues
	d := &fakeDeliverer{sessions: map[ids.ConnectorID]bool{pair("a", "a1"): true, pair("a", "a2"): true},
		failing: map[ids.ConnectorID]bool{}, delivered: map[ids.ConnectorID][]sessionproto.Delivery{}}
	h := newHarness(t, func(c *Config) {
		q = &hiddenQueues{fakeQueues: c.Queues.(*fakeQueues), hidden: map[ids.ConnectorID][]sessionproto.Delivery{}}
		c.Queues, c.Deliverer = q, d
	})
	return h, q, d
}

// A connector with a session here that takes deliveries gets the message
// in its frame, hidden on its queue and not nudged; the others as before.
func TestDeliverableConnectorsGetTheMessageInTheFrame(t *testing.T) {
	h, q, d := newDeliverHarness(t)
	assert.Equal(t, "complete", h.handle(broadcast("m1", "a", "chat"), 1).op)
	for _, c := range []string{"a1", "a2"} {
		require.Len(t, q.hidden[pair("a", c)], 1, c)
		require.Len(t, d.delivered[pair("a", c)], 1, c)
		assert.Equal(t, q.hidden[pair("a", c)][0], d.delivered[pair("a", c)][0])
		assert.Equal(t, 7, d.delivered[pair("a", c)][0].VisibilitySeconds, "hidden for as long as the session asked")
		assert.Zero(t, h.queues.count(pair("a", c)), "not put visible")
	}
	assert.Equal(t, 1, h.queues.count(pair("a", "a3")), "no session here: put visible")
	h.router.nudges.close()
	h.router.nudges.run(context.Background())
	assert.Equal(t, map[ids.ConnectorID]int{pair("a", "a3"): 1}, h.nudger.got, "only the one without a delivery is nudged")
	assert.Empty(t, q.released)
}

// A delivery that cannot be written, or whose session went, is released
// (visible at once) and its connector nudged: the message is not left
// hidden.
func TestFailedDeliveryIsReleasedAndNudged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fakeDeliverer)
	}{
		{"write fails", func(d *fakeDeliverer) { d.failing[pair("a", "a1")] = true }},
		{"session gone", func(d *fakeDeliverer) { d.gone = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, q, d := newDeliverHarness(t)
			tc.setup(d)
			assert.Equal(t, "complete", h.handle(targeted("m1", "a", "a1"), 1).op)
			require.Eventually(t, func() bool {
				q.mu.Lock()
				defer q.mu.Unlock()
				return len(q.released) == 1
			}, 5*time.Second, time.Millisecond)
			h.router.nudges.close()
			h.router.nudges.run(context.Background())
			assert.Equal(t, 1, h.nudger.got[pair("a", "a1")])
		})
	}
}

// A hidden put that fails is retried like any enqueue, and the message
// abandoned for a delayed retry when it keeps failing.
func TestHiddenPutFailureIsRetried(t *testing.T) {
	h, q, d := newDeliverHarness(t)
	failing := &failingHidden{hiddenQueues: q}
	h.router.cfg.Queues = failing
	assert.Equal(t, "abandon", h.handle(targeted("m1", "a", "a1"), 1).op)
	assert.Equal(t, 4, failing.calls, "one try and three immediate retries")
	assert.Empty(t, d.delivered)
}

type failingHidden struct {
	*hiddenQueues
	calls int
}

func (f *failingHidden) EnqueueHidden(context.Context, ids.ConnectorID, string, time.Duration) (sessionproto.Delivery, error) {
	f.calls++
	return sessionproto.Delivery{}, errors.New("storage unavailable")
}

// After a receive that returned fewer messages than asked for, the router
// does not read the bus again at once: that empty read would cost a
// receive per message sent one at a time. A wake brings the next.
func TestShortReceiveWaitsForAWake(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Idle, c.IdleMax = time.Hour, time.Hour })
	h.bus.pending = append(h.bus.pending, bus.NewMessage(bus.QueueConnectors, targeted("m1", "a", "a1"), nil, 1, time.Now().Add(time.Minute), nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.router.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool { return h.queues.count(pair("a", "a1")) == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	h.bus.mu.Lock()
	assert.Equal(t, 1, h.bus.receives)
	h.bus.pending = append(h.bus.pending, bus.NewMessage(bus.QueueConnectors, targeted("m2", "a", "a1"), nil, 1, time.Now().Add(time.Minute), nil))
	h.bus.mu.Unlock()
	h.router.Wake()
	require.Eventually(t, func() bool { return h.queues.count(pair("a", "a1")) == 2 }, 5*time.Second, time.Millisecond)
}
