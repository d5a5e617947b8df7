// Package bustest is the contract suite every bus driver passes. A driver's
// tests (or the integration suite, for drivers that need a server) call
// Run with a Factory that opens the driver against a real backend.
//
// The suite checks: a round trip preserves every envelope field; Complete
// removes; Abandon and lock expiry redeliver with a higher delivery count
// and make the old lock useless; a delayed Abandon or Send is not visible
// before the delay; RenewLock keeps a message invisible past its first
// lock; DeadLetter lands in the error queue with reason and description; an
// undecodable raw message and a poison message go there instead of
// looping; a large body round-trips (by claim check); concurrent receivers
// never hold one message at the same time.
package bustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
)

// Fixture is one driver under test plus what the suite needs around it.
type Fixture struct {
	// Driver under test.
	Driver bus.Driver
	// NewQueue returns the name of an empty queue for one test.
	NewQueue func(t *testing.T) string
	// SendRaw enqueues bytes that are not an envelope, bypassing the driver.
	SendRaw func(ctx context.Context, queue string, raw []byte) error
	// Lock is the lock duration the suite asks for. Drivers whose lock is
	// fixed per queue (Service Bus) set it to that duration.
	Lock time.Duration
	// MaxDeliveries the driver was configured with; 0 skips the poison test.
	MaxDeliveries int
	// LargeBody is the size of a body that only fits by claim check; 0
	// skips the claim check test.
	LargeBody int
}

// Factory opens a fresh fixture; Run calls it once per test, so state does
// not leak between tests. Register cleanups with t.Cleanup.
type Factory func(t *testing.T) Fixture

// Run runs the whole contract suite. Tests run all at once, each on its
// own queue, whatever go test's -parallel (the number of CPUs by
// default): most of their time goes to waiting for locks and delays to
// expire.
func Run(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f Fixture)
	}{
		{"RoundTripPreservesEveryField", testRoundTrip},
		{"CompleteRemoves", testCompleteRemoves},
		{"AbandonRedeliversWithHigherCount", testAbandon},
		{"LockExpiryRedeliversAndOldLockIsLost", testLockExpiry},
		{"DelayedAbandonIsNotVisibleBeforeDelay", testDelayedAbandon},
		{"DelayedSendIsNotVisibleBeforeDelay", testDelayedSend},
		{"RenewLockKeepsMessageInvisible", testRenew},
		{"DeadLetterKeepsReason", testDeadLetter},
		{"UndecodableGoesToErrorQueue", testUndecodable},
		{"PoisonGoesToErrorQueue", testPoison},
		{"LargeBodyRoundTrips", testLargeBody},
		{"ConcurrentReceiversNeverShareAMessage", testConcurrent},
		{"ForeignMessageIsRefused", testForeign},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tt.name, func(t *testing.T) {
				f := factory(t)
				tt.fn(t, f)
			})
		}()
	}
	wg.Wait()
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Full returns an envelope with every field set, addressed to a connector.
func Full() *envelope.Envelope {
	return &envelope.Envelope{
		ID:            envelope.NewID(),
		CorrelationID: envelope.NewID(),
		ReplyTo:       "replies",
		Kind:          envelope.KindTargeted,
		Tenant:        "Contoso.EU",
		Connector:     "agent_01",
		From:          &envelope.Identity{Service: "relayserver"},
		Headers:       map[string]string{"type": "ping", "x-note": "ünicode ✓ <&>"},
		ContentType:   "application/json",
		Body:          []byte(`{"n":1}`),
		CreatedAt:     time.Now().UTC().Truncate(time.Millisecond),
	}
}

func send(t *testing.T, f Fixture, queue string, env *envelope.Envelope) {
	t.Helper()
	require.NoError(t, f.Driver.Send(ctxFor(t), queue, env, nil))
}

// receiveWithin polls until one message arrives or timeout passes.
func receiveWithin(t *testing.T, f Fixture, queue string, lock, timeout time.Duration) *bus.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms, err := f.Driver.Receive(ctxFor(t), queue, 1, lock)
		require.NoError(t, err)
		if len(ms) > 0 {
			require.Len(t, ms, 1)
			return ms[0]
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustReceive(t *testing.T, f Fixture, queue string) *bus.Message {
	t.Helper()
	m := receiveWithin(t, f, queue, f.Lock, 10*time.Second)
	require.NotNil(t, m, "no message arrived on %q", queue)
	return m
}

func assertEmptyFor(t *testing.T, f Fixture, queue string, d time.Duration) {
	t.Helper()
	m := receiveWithin(t, f, queue, f.Lock, d)
	if m != nil {
		t.Fatalf("queue %q: unexpected message %s (delivery %d)", queue, m.Envelope.ID, m.DeliveryCount)
	}
}

func assertSameEnvelope(t *testing.T, want, got *envelope.Envelope) {
	t.Helper()
	require.NotNil(t, got)
	g := got.Clone()
	g.Claim = nil // a claim check may have been used on the way
	w := want.Clone()
	w.Claim = nil
	assert.Equal(t, w, g)
}

func testRoundTrip(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	env := Full()
	send(t, f, q, env)
	m := mustReceive(t, f, q)
	assertSameEnvelope(t, env, m.Envelope)
	assert.Equal(t, 1, m.DeliveryCount)
	assert.Equal(t, q, m.Queue)
	assert.True(t, m.LockedUntil().After(time.Now().Add(-time.Second)), "LockedUntil %s", m.LockedUntil())
	require.NoError(t, f.Driver.Complete(ctxFor(t), m))

	// Broadcast and cloud kinds travel the same way.
	b := &envelope.Envelope{ID: envelope.NewID(), Kind: envelope.KindBroadcast, Tenant: "t1", Topic: "chat", Body: []byte("hi"), CreatedAt: time.Now().UTC()}
	c := &envelope.Envelope{ID: envelope.NewID(), Kind: envelope.KindCloud, From: &envelope.Identity{Tenant: "t1", Connector: "c1"}, CreatedAt: time.Now().UTC()}
	for _, e := range []*envelope.Envelope{b, c} {
		send(t, f, q, e)
		m := mustReceive(t, f, q)
		assertSameEnvelope(t, e, m.Envelope)
		require.NoError(t, f.Driver.Complete(ctxFor(t), m))
	}
}

func testCompleteRemoves(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	send(t, f, q, Full())
	m := mustReceive(t, f, q)
	require.NoError(t, f.Driver.Complete(ctxFor(t), m))
	assertEmptyFor(t, f, q, f.Lock+time.Second)
	err := f.Driver.Complete(ctxFor(t), m)
	assert.ErrorIs(t, err, bus.ErrLockLost, "completing twice")
}

func testAbandon(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	env := Full()
	send(t, f, q, env)
	m := mustReceive(t, f, q)
	require.NoError(t, f.Driver.Abandon(ctxFor(t), m, 0))
	m2 := mustReceive(t, f, q)
	assert.Equal(t, env.ID, m2.Envelope.ID)
	assert.Equal(t, 2, m2.DeliveryCount)
	require.NoError(t, f.Driver.Complete(ctxFor(t), m2))
}

func testLockExpiry(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	env := Full()
	send(t, f, q, env)
	m := mustReceive(t, f, q)
	// Invisible while locked.
	assertEmptyFor(t, f, q, f.Lock/3)
	m2 := receiveWithin(t, f, q, f.Lock, f.Lock+5*time.Second)
	require.NotNil(t, m2, "not redelivered after lock expiry")
	assert.Equal(t, env.ID, m2.Envelope.ID)
	assert.Equal(t, 2, m2.DeliveryCount)
	assert.ErrorIs(t, f.Driver.Complete(ctxFor(t), m), bus.ErrLockLost, "the first lock must be useless")
	require.NoError(t, f.Driver.Complete(ctxFor(t), m2))
}

func testDelayedAbandon(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	env := Full()
	send(t, f, q, env)
	m := mustReceive(t, f, q)
	delay := 3 * time.Second
	start := time.Now()
	require.NoError(t, f.Driver.Abandon(ctxFor(t), m, delay))
	assertEmptyFor(t, f, q, delay-time.Second)
	m2 := receiveWithin(t, f, q, f.Lock, delay+5*time.Second)
	require.NotNil(t, m2, "not redelivered after the delay")
	assert.GreaterOrEqual(t, time.Since(start), delay-200*time.Millisecond)
	assert.Equal(t, env.ID, m2.Envelope.ID)
	assert.Equal(t, 2, m2.DeliveryCount)
	require.NoError(t, f.Driver.Complete(ctxFor(t), m2))
}

func testDelayedSend(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	env := Full()
	delay := 3 * time.Second
	start := time.Now()
	require.NoError(t, f.Driver.Send(ctxFor(t), q, env, &bus.SendOptions{Delay: delay}))
	assertEmptyFor(t, f, q, delay-time.Second)
	m := receiveWithin(t, f, q, f.Lock, delay+5*time.Second)
	require.NotNil(t, m, "not delivered after the delay")
	assert.GreaterOrEqual(t, time.Since(start), delay-200*time.Millisecond)
	assertSameEnvelope(t, env, m.Envelope)
	require.NoError(t, f.Driver.Complete(ctxFor(t), m))
}

func testRenew(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	send(t, f, q, Full())
	m := mustReceive(t, f, q)
	first := m.LockedUntil()
	end := time.Now().Add(2*f.Lock + time.Second)
	for time.Now().Before(end) {
		time.Sleep(f.Lock / 3)
		require.NoError(t, f.Driver.RenewLock(ctxFor(t), m, f.Lock))
		ms, err := f.Driver.Receive(ctxFor(t), q, 1, f.Lock)
		require.NoError(t, err)
		require.Empty(t, ms, "renewed message was delivered to someone else")
	}
	assert.True(t, m.LockedUntil().After(first), "LockedUntil not advanced")
	require.NoError(t, f.Driver.Complete(ctxFor(t), m))
}

func receiveDeadLetter(t *testing.T, f Fixture, queue string) *bus.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ms, err := f.Driver.ReceiveDeadLetters(ctxFor(t), queue, 1, f.Lock)
		require.NoError(t, err)
		if len(ms) > 0 {
			return ms[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no dead letter from %q", queue)
	return nil
}

func testDeadLetter(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	env := Full()
	send(t, f, q, env)
	m := mustReceive(t, f, q)
	require.NoError(t, f.Driver.DeadLetter(ctxFor(t), m, "handler failed", "strconv.Atoi: parsing \"x\": invalid syntax"))
	assertEmptyFor(t, f, q, f.Lock+time.Second)

	dl := receiveDeadLetter(t, f, q)
	require.NotNil(t, dl.DeadLetter)
	assert.Equal(t, "handler failed", dl.DeadLetter.Reason)
	assert.Equal(t, "strconv.Atoi: parsing \"x\": invalid syntax", dl.DeadLetter.Description)
	assert.Equal(t, q, dl.DeadLetter.SourceQueue)
	assertSameEnvelope(t, env, dl.Envelope)
	require.NoError(t, f.Driver.Complete(ctxFor(t), dl))
}

func testUndecodable(t *testing.T, f Fixture) {
	if f.SendRaw == nil {
		t.Skip("fixture has no SendRaw")
	}
	q := f.NewQueue(t)
	raw := []byte(`{"v":1,"id":"x","kind":"nonsense"}`)
	require.NoError(t, f.SendRaw(ctxFor(t), q, raw))
	good := Full()
	send(t, f, q, good)

	// Only the good message is ever handed out.
	m := mustReceive(t, f, q)
	assert.Equal(t, good.ID, m.Envelope.ID)
	require.NoError(t, f.Driver.Complete(ctxFor(t), m))
	assertEmptyFor(t, f, q, f.Lock+time.Second)

	dl := receiveDeadLetter(t, f, q)
	assert.Contains(t, dl.DeadLetter.Reason, "undecodable")
	assert.Contains(t, dl.DeadLetter.Description, "kind")
	assert.Nil(t, dl.Envelope)
	assert.Equal(t, raw, dl.Raw)
	require.NoError(t, f.Driver.Complete(ctxFor(t), dl))
}

func testPoison(t *testing.T, f Fixture) {
	if f.MaxDeliveries == 0 || f.MaxDeliveries > 5 {
		t.Skip("fixture has no small MaxDeliveries")
	}
	q := f.NewQueue(t)
	env := Full()
	send(t, f, q, env)
	for i := 1; i <= f.MaxDeliveries; i++ {
		m := mustReceive(t, f, q)
		require.Equal(t, i, m.DeliveryCount)
		require.NoError(t, f.Driver.Abandon(ctxFor(t), m, 0))
	}
	assertEmptyFor(t, f, q, f.Lock+time.Second)
	dl := receiveDeadLetter(t, f, q)
	assert.Contains(t, dl.DeadLetter.Reason, "poison")
	assertSameEnvelope(t, env, dl.Envelope)
	require.NoError(t, f.Driver.Complete(ctxFor(t), dl))
}

func testLargeBody(t *testing.T, f Fixture) {
	if f.LargeBody == 0 {
		t.Skip("fixture has no claim check")
	}
	q := f.NewQueue(t)
	env := Full()
	env.Body = make([]byte, f.LargeBody)
	_, _ = rand.Read(env.Body)
	send(t, f, q, env)
	m := mustReceive(t, f, q)
	require.True(t, bytes.Equal(env.Body, m.Envelope.Body), "body differs after claim check")
	assertSameEnvelope(t, env, m.Envelope)
	require.NoError(t, f.Driver.Complete(ctxFor(t), m))
}

func testConcurrent(t *testing.T, f Fixture) {
	q := f.NewQueue(t)
	const n, receivers = 24, 4
	want := map[string]bool{}
	for range n {
		e := Full()
		want[e.ID] = true
		send(t, f, q, e)
	}
	// Lock long enough that nothing expires during the test: any second
	// delivery would be a broken lock, not a redelivery.
	lock := max(f.Lock, 30*time.Second)
	var mu sync.Mutex
	seen := map[string]int{}
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	errs := make(chan error, receivers)
	for range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				done := len(seen) == n
				mu.Unlock()
				if done {
					return
				}
				ms, err := f.Driver.Receive(ctx, q, 5, lock)
				if err != nil {
					errs <- err
					return
				}
				for _, m := range ms {
					mu.Lock()
					seen[m.Envelope.ID]++
					mu.Unlock()
				}
				// Hold every message until the end: settle none.
				if len(ms) == 0 {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, n)
	for id, c := range seen {
		assert.True(t, want[id], "unknown id %s", id)
		assert.Equal(t, 1, c, "message %s held by %d receivers", id, c)
	}
}

func testForeign(t *testing.T, f Fixture) {
	m := bus.NewMessage("q", Full(), nil, 1, time.Now(), struct{}{})
	ctx := ctxFor(t)
	for name, err := range map[string]error{
		"complete":    f.Driver.Complete(ctx, m),
		"abandon":     f.Driver.Abandon(ctx, m, 0),
		"renew":       f.Driver.RenewLock(ctx, m, time.Second),
		"dead-letter": f.Driver.DeadLetter(ctx, m, "r", ""),
	} {
		assert.True(t, errors.Is(err, bus.ErrForeignMessage), "%s: got %v", name, err)
	}
}

// UniqueName returns a queue name unique to this process and test, valid
// for Storage Queues and Service Bus: prefix + 12 hex digits.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%x", prefix, b)
}
