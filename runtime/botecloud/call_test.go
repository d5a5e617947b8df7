package botecloud

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/internal/calls"
	"github.com/botehq/platform/runtime/payload"
)

// running starts c.Run with h and stops it when the test ends.
func running(t *testing.T, c *Client, h HandlerFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.running }, 5*time.Second, time.Millisecond)
}

// lastSent waits for the n-th envelope sent and returns it.
func lastSent(t *testing.T, fb *fakeBus, n int) *envelope.Envelope {
	t.Helper()
	require.Eventually(t, func() bool { fb.mu.Lock(); defer fb.mu.Unlock(); return len(fb.sent) >= n }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.sent[n-1].env
}

// replyFrom is what the gateway puts on the cloud queue when connector
// tenant/conn answers req: From stamped from its token, the deadline
// carried back.
func replyFrom(tenant, conn string, req *envelope.Envelope, body string) *bus.Message {
	env := &envelope.Envelope{
		ID: envelope.NewID(), CorrelationID: req.ID, Kind: envelope.KindCloud,
		From: &envelope.Identity{Tenant: tenant, Connector: conn}, Body: []byte(body), CreatedAt: time.Now().UTC(),
	}
	env.SetProtocolHeader(envelope.HeaderDeadline, req.Deadline())
	return bus.NewMessage(bus.QueueCloud, env, nil, 1, time.Now().Add(time.Minute), nil)
}

func noHandler(t *testing.T) HandlerFunc {
	return func(_ context.Context, m *Message) error {
		t.Errorf("handler called with %s: replies and expired messages never reach it", m.ID)
		return nil
	}
}

type callResult struct {
	m   *Message
	err error
}

func call(c *Client, ctx context.Context, msg OutMessage) <-chan callResult {
	out := make(chan callResult, 1)
	go func() {
		m, err := c.Call(ctx, "contoso", "agent-1", msg)
		out <- callResult{m, err}
	}()
	return out
}

// A call carries its context's deadline in the reserved header, accepts
// only the reply whose verified sender is the connector it called, and
// refuses (error queue) a reply from any other connector, even with the
// right correlation id.
func TestCallReply(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	running(t, c, noHandler(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	res := call(c, ctx, OutMessage{Body: []byte("ping"), Headers: map[string]string{"type": "ping"}})
	req := lastSent(t, fb, 1)
	assert.Equal(t, envelope.KindTargeted, req.Kind)
	assert.Equal(t, "agent-1", req.Connector)
	assert.True(t, deadline.Equal(req.Deadline()), "deadline %s travels as %s", deadline, req.Headers[envelope.HeaderDeadline])
	assert.Equal(t, "ping", req.Headers["type"])

	fb.push(replyFrom("contoso", "agent-2", req, "forged"))
	fb.push(replyFrom("fabrikam", "agent-1", req, "forged"))
	require.Eventually(t, func() bool { return fb.settled() == 2 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	require.Len(t, fb.deadLetters, 2)
	for _, d := range fb.deadLetters {
		assert.Equal(t, "unverified sender", d.reason)
		assert.Contains(t, d.description, "the call went to contoso/agent-1, the reply is from ")
	}
	fb.mu.Unlock()
	select {
	case r := <-res:
		t.Fatalf("call returned on a forged reply: %+v", r)
	default:
	}

	fb.push(replyFrom("contoso", "agent-1", req, "pong"))
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "pong", string(r.m.Body))
	assert.Equal(t, req.ID, r.m.CorrelationID)
	assert.Equal(t, "contoso/agent-1", r.m.From.String())
	assert.Empty(t, r.m.Headers, "protocol headers are not application headers")
}

// A call whose caller gave up returns the context's error; its reply,
// arriving later, is discarded and counted, never handled. A reply for a
// call this process did not make, still within its deadline, is put back
// for another replica.
func TestCallTimeoutAndLateReply(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	running(t, c, noHandler(t))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := <-call(c, ctx, OutMessage{Body: []byte("ping")})
	require.ErrorIs(t, r.err, context.DeadlineExceeded)
	req := lastSent(t, fb, 1)
	fb.push(replyFrom("contoso", "agent-1", req, "too late"))
	require.Eventually(t, func() bool { return c.Stats().LateReplies == 1 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	assert.Len(t, fb.completed, 1)
	fb.mu.Unlock()

	other := req.Clone()
	other.ID = "another-replicas-call"
	other.SetProtocolHeader(envelope.HeaderDeadline, time.Now().Add(time.Minute))
	fb.push(replyFrom("contoso", "agent-1", other, "not mine"))
	require.Eventually(t, func() bool { return fb.settled() == 2 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	require.Len(t, fb.abandoned, 1)
	assert.LessOrEqual(t, fb.abandoned[0].delay, time.Second)
	fb.mu.Unlock()
	assert.Equal(t, uint64(1), c.Stats().LateReplies)
}

// A connector's call reaches the handler under its deadline, and the
// handler answers with one call: Reply correlates and carries the
// deadline back. A call whose caller already gave up, and a message past
// its time to live, go to the error queue as "expired".
func TestHandleCallAndExpired(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	deadline := time.Now().Add(time.Minute).UTC()
	var handlerDeadline atomic.Value
	running(t, c, func(ctx context.Context, m *Message) error {
		d, _ := ctx.Deadline()
		handlerDeadline.Store(d)
		_, err := c.Reply(ctx, m, OutMessage{Body: []byte("pong")})
		return err
	})
	callMsg := fromConnector("call-1", 1)
	callMsg.Envelope.SetProtocolHeader(envelope.HeaderDeadline, deadline)
	gaveUp := fromConnector("call-2", 1)
	gaveUp.Envelope.SetProtocolHeader(envelope.HeaderDeadline, time.Now().Add(-time.Second))
	stale := fromConnector("ttl-1", 1)
	stale.Envelope.SetProtocolHeader(envelope.HeaderExpiresAt, time.Now().Add(-time.Second))
	fb.push(callMsg, gaveUp, stale)
	require.Eventually(t, func() bool { return fb.settled() == 3 }, 5*time.Second, time.Millisecond)

	assert.True(t, deadline.Equal(handlerDeadline.Load().(time.Time)))
	reply := lastSent(t, fb, 1)
	assert.Equal(t, "call-1", reply.CorrelationID)
	assert.True(t, deadline.Equal(reply.Deadline()))
	assert.Equal(t, "agent-1", reply.Connector)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	require.Len(t, fb.deadLetters, 2)
	for _, d := range fb.deadLetters {
		assert.Equal(t, envelope.ReasonExpired, d.reason, d.id)
	}
	assert.Equal(t, uint64(2), c.Stats().Expired)
}

// Only the client sets protocol headers: an application that names one,
// in any spelling, is refused before anything is sent.
func TestCallRefusesForgedProtocolHeaders(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	running(t, c, noHandler(t))
	for _, name := range []string{envelope.HeaderDeadline, "Bote-Deadline", "bote_expires_at", envelope.HeaderExpiresAt} {
		h := map[string]string{name: envelope.FormatTime(time.Now().Add(time.Hour))}
		_, err := c.Call(context.Background(), "contoso", "agent-1", OutMessage{Headers: h})
		assert.ErrorIs(t, err, envelope.ErrReservedHeader, name)
		_, err = c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{Headers: h})
		assert.ErrorIs(t, err, envelope.ErrReservedHeader, name)
		_, err = c.Broadcast(context.Background(), "contoso", "chat", OutMessage{Headers: h})
		assert.ErrorIs(t, err, envelope.ErrReservedHeader, name)
		_, err = c.Reply(context.Background(), &Message{ID: "x", From: envelope.Identity{Tenant: "contoso", Connector: "agent-1"}}, OutMessage{Headers: h})
		assert.ErrorIs(t, err, envelope.ErrReservedHeader, name)
	}
	fb.mu.Lock()
	assert.Empty(t, fb.sent)
	fb.mu.Unlock()
}

// A call with a CorrelationID is refused before anything is sent: with the
// deadline it carries, the connector would take it for a reply to one of
// its own calls and never run its handler (the caller would time out).
func TestCallRefusesCorrelationID(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	running(t, c, noHandler(t))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "contoso", "agent-1", OutMessage{CorrelationID: "conversation-7"})
	assert.ErrorIs(t, err, ErrCallCorrelated)
	fb.mu.Lock()
	assert.Empty(t, fb.sent)
	fb.mu.Unlock()
}

// Two calls at once with the same caller-chosen id: the second is refused,
// and the first still gets its reply (the second used to replace it in
// the table of waiting calls, and its end removed the first's entry).
func TestCallDuplicateIDIsRefused(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	running(t, c, noHandler(t))
	first := call(c, context.Background(), OutMessage{ID: "order-7"})
	req := lastSent(t, fb, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "contoso", "agent-1", OutMessage{ID: "order-7"})
	require.ErrorIs(t, err, calls.ErrDuplicateCall)
	fb.push(replyFrom("contoso", "agent-1", req, "pong"))
	r := <-first
	require.NoError(t, r.err)
	assert.Equal(t, "pong", string(r.m.Body))
}

// Call waits for Run to start (a program may start both at once), and
// says so when its context ends first.
func TestCallNeedsRun(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "contoso", "agent-1", OutMessage{})
	assert.ErrorIs(t, err, ErrNotRunning)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, fb.sent, "nothing is sent that no one would receive the reply to")

	res := call(c, context.Background(), OutMessage{Body: []byte("early")})
	running(t, c, noHandler(t))
	req := lastSent(t, fb, 1)
	fb.push(replyFrom("contoso", "agent-1", req, "pong"))
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "pong", string(r.m.Body))
	_, err = c.Call(context.Background(), "contoso", "Agent 1", OutMessage{})
	assert.ErrorContains(t, err, "connector")
}

// Scheduled delivery goes to the bus as a delay; a TTL becomes the
// reserved expiry header, counted from the delivery time.
func TestScheduleAndTTL(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	ctx := context.Background()

	_, err := c.SendToConnector(ctx, "contoso", "agent-1", OutMessage{Delay: 5 * time.Minute, TTL: time.Hour})
	require.NoError(t, err)
	_, err = c.Broadcast(ctx, "contoso", "chat", OutMessage{DeliverAt: now.Add(time.Minute)})
	require.NoError(t, err)
	_, err = c.SendToConnector(ctx, "contoso", "agent-1", OutMessage{DeliverAt: now.Add(-time.Minute), TTL: time.Second})
	require.NoError(t, err)
	fb.mu.Lock()
	require.Len(t, fb.sent, 3)
	assert.Equal(t, &bus.SendOptions{Delay: 5 * time.Minute}, fb.sent[0].opts)
	assert.Equal(t, now.Add(65*time.Minute), fb.sent[0].env.ExpiresAt())
	assert.Equal(t, &bus.SendOptions{Delay: time.Minute}, fb.sent[1].opts)
	assert.True(t, fb.sent[1].env.ExpiresAt().IsZero())
	assert.Nil(t, fb.sent[2].opts, "a time in the past is now")
	assert.Equal(t, now.Add(time.Second), fb.sent[2].env.ExpiresAt())
	fb.mu.Unlock()

	for name, o := range map[string]OutMessage{
		"exclusive":      {Delay: time.Second, DeliverAt: now.Add(time.Hour)},
		"negative delay": {Delay: -time.Second},
		"negative ttl":   {TTL: -time.Second},
	} {
		_, err := c.SendToConnector(ctx, "contoso", "agent-1", o)
		assert.Error(t, err, name)
	}
}

// With a connector's key the bus carries only ciphertext, and the protocol
// headers say how to open it; a message the client cannot open goes to
// the error queue instead of the handler.
func TestPayloadEncryption(t *testing.T) {
	connKey, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	fb := &fakeBus{}
	c := newClient(t, fb, func(cfg *Config) {
		cfg.CompressAbove = 100
		cfg.ConnectorKey = func(context.Context, string, string) (*ecdh.PublicKey, error) { return connKey.PublicKey(), nil }
	})
	secret := []byte(strings.Repeat("secret ", 100))
	_, err = c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{Body: secret})
	require.NoError(t, err)
	_, err = c.Broadcast(context.Background(), "contoso", "chat", OutMessage{Body: secret})
	require.NoError(t, err)
	sealed, bc := lastSent(t, fb, 1), lastSent(t, fb, 2)
	assert.NotContains(t, string(sealed.Body), "secret")
	assert.Equal(t, envelope.EncodingGzip, sealed.Headers[envelope.HeaderContentEncoding])
	assert.Equal(t, envelope.EncryptionHPKE, sealed.Headers[envelope.HeaderEncryption])
	body, err := payload.DecodeEnvelope(sealed, connKey, "contoso/agent-1", 1<<20)
	require.NoError(t, err)
	assert.Equal(t, secret, body)
	assert.Empty(t, bc.Headers[envelope.HeaderEncryption], "a broadcast is not encrypted")
	assert.Equal(t, envelope.EncodingGzip, bc.Headers[envelope.HeaderContentEncoding])

	// A connector message sealed to a key this service does not hold.
	running(t, c, noHandler(t))
	m := fromConnector("sealed-elsewhere", 1)
	e, err := payload.Encode([]byte("x"), payload.Options{To: connKey.PublicKey(), MessageID: m.Envelope.ID, Recipient: payload.CloudRecipient})
	require.NoError(t, err)
	m.Envelope.Body = e.Body
	m.Envelope.SetProtocolValue(envelope.HeaderEncryption, e.Encryption)
	fb.push(m)
	require.Eventually(t, func() bool { return fb.settled() == 1 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	require.Len(t, fb.deadLetters, 1)
	assert.Equal(t, "undecodable payload", fb.deadLetters[0].reason)
	assert.Contains(t, fb.deadLetters[0].description, payload.ErrNoKey.Error())
}

// A decompression bomb from a connector (100 MiB of zeros in ~100 KB,
// within the default MaxBodyBytes) goes to the error queue as undecodable,
// never to the handler, and is counted.
func TestDecompressionBombIsUndecodable(t *testing.T) {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	_, err := w.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	running(t, c, noHandler(t))
	m := fromConnector("bomb", 1)
	m.Envelope.Body = bytes.Repeat(z.Bytes(), 100)
	m.Envelope.SetProtocolValue(envelope.HeaderContentEncoding, envelope.EncodingGzip)
	fb.push(m)
	require.Eventually(t, func() bool { return fb.settled() == 1 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	require.Len(t, fb.deadLetters, 1)
	assert.Equal(t, "undecodable payload", fb.deadLetters[0].reason)
	assert.Contains(t, fb.deadLetters[0].description, "inflates past")
	assert.Equal(t, uint64(1), c.Stats().Undecodable)
}

// With RequireEncryption a connector message in the clear (a connector
// without CloudKey, or a body stripped of its encryption) goes to the
// error queue, never to the handler; a sealed one is handled.
func TestRequireEncryption(t *testing.T) {
	cloudKey, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, err = New(Config{Bus: &fakeBus{}, Service: "relayserver", RequireEncryption: true})
	assert.ErrorContains(t, err, "RequireEncryption needs a DecryptionKey")

	fb := &fakeBus{}
	c := newClient(t, fb, func(cfg *Config) { cfg.DecryptionKey, cfg.RequireEncryption = cloudKey, true })
	handled := make(chan string, 2)
	running(t, c, func(_ context.Context, m *Message) error { handled <- string(m.Body); return nil })

	fb.push(fromConnector("clear", 1))
	require.Eventually(t, func() bool { return fb.settled() == 1 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	require.Len(t, fb.deadLetters, 1)
	assert.Equal(t, "undecodable payload", fb.deadLetters[0].reason)
	assert.Contains(t, fb.deadLetters[0].description, "not encrypted")
	fb.mu.Unlock()
	assert.Equal(t, uint64(1), c.Stats().Undecodable)

	m := fromConnector("sealed", 1)
	e, err := payload.Encode([]byte("secret"), payload.Options{To: cloudKey.PublicKey(), MessageID: m.Envelope.ID, Recipient: payload.CloudRecipient})
	require.NoError(t, err)
	m.Envelope.Body = e.Body
	m.Envelope.SetProtocolValue(envelope.HeaderEncryption, e.Encryption)
	fb.push(m)
	select {
	case body := <-handled:
		assert.Equal(t, "secret", body)
	case <-time.After(5 * time.Second):
		t.Fatal("the sealed message was not handled")
	}
	assert.Empty(t, handled, "the clear message reached the handler")
}

// queueBus is a fakeBus that creates and deletes queues (bus.QueueManager),
// like the Storage Queue driver.
type queueBus struct {
	fakeBus
	created, deleted []string
	createErr        error // CreateQueue fails with it
}

func (f *queueBus) CreateQueue(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return f.createErr
	}
	f.created = append(f.created, name)
	return nil
}

func (f *queueBus) DeleteQueue(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, name)
	return nil
}

// With a bus that makes queues, Run creates this instance's reply queue
// and deletes it when it ends, and a call's id names that queue, so the
// gateway sends the reply there and no other replica sees it. A reply
// there that no call waits for is late at once: nobody else reads that
// queue, so it is not put back (on the shared queue it would be).
func TestCallRepliesComeToTheInstanceQueue(t *testing.T) {
	fb := &queueBus{}
	cfg := Config{Bus: fb, Service: "relayserver", Logger: slog.New(slog.DiscardHandler), PollMin: time.Millisecond, PollMax: 5 * time.Millisecond}
	c, err := New(cfg)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, noHandler(t)) }()

	callCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := call(c, callCtx, OutMessage{Body: []byte("ping")})
	req := lastSent(t, &fb.fakeBus, 1)
	queue, ok := bus.ReplyQueueOf(req.ID)
	require.True(t, ok, "the call id %q names no reply queue", req.ID)
	fb.mu.Lock()
	assert.Equal(t, []string{queue}, fb.created)
	fb.mu.Unlock()

	reply := replyFrom("contoso", "agent-1", req, "pong")
	reply.Queue = queue
	fb.push(reply)
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "pong", string(r.m.Body))

	late := replyFrom("contoso", "agent-1", req, "again")
	late.Queue = queue
	fb.push(late)
	require.Eventually(t, func() bool { return c.Stats().LateReplies == 1 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	assert.Empty(t, fb.abandoned, "a reply on the instance's own queue is never put back")
	assert.Len(t, fb.completed, 2)
	fb.mu.Unlock()

	// A call with an id of the application's own choosing cannot carry
	// the address: its reply comes on the shared queue.
	pending := call(c, callCtx, OutMessage{ID: "app-chosen-id"})
	assert.Equal(t, "app-chosen-id", lastSent(t, &fb.fakeBus, 2).ID)

	// When Run ends, a waiting call ends too: nothing reads its reply.
	stop()
	require.NoError(t, <-done)
	require.ErrorIs(t, (<-pending).err, ErrNotRunning)
	fb.mu.Lock()
	assert.Equal(t, []string{queue}, fb.deleted)
	fb.mu.Unlock()
}

// When the reply queue cannot be made (no right to create queues, the
// storage account unreachable at that moment), Run still runs and calls
// still get their replies, on the shared cloud queue: the id names no
// reply queue, and nothing is deleted when Run ends.
func TestCallWithoutReplyQueueUsesTheCloudQueue(t *testing.T) {
	fb := &queueBus{createErr: errors.New("AuthorizationPermissionMismatch")}
	cfg := Config{Bus: fb, Service: "relayserver", Logger: slog.New(slog.DiscardHandler), PollMin: time.Millisecond, PollMax: 5 * time.Millisecond}
	c, err := New(cfg)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, noHandler(t)) }()

	callCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := call(c, callCtx, OutMessage{Body: []byte("ping")})
	req := lastSent(t, &fb.fakeBus, 1)
	_, named := bus.ReplyQueueOf(req.ID)
	assert.False(t, named, "the call id %q names a reply queue that was never made", req.ID)

	fb.push(replyFrom("contoso", "agent-1", req, "pong")) // on the cloud queue
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "pong", string(r.m.Body))

	stop()
	require.NoError(t, <-done)
	fb.mu.Lock()
	assert.Empty(t, fb.deleted)
	fb.mu.Unlock()
}
