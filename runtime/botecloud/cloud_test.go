package botecloud

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/seen"
	"github.com/botehq/platform/runtime/sessionproto"
)

// fakeBus is an in-memory bus: Receive hands out what was queued, and every
// settlement is recorded.
type fakeBus struct {
	mu          sync.Mutex
	queued      []*bus.Message
	sent        []sent
	completed   []string
	abandoned   []abandon
	deadLetters []deadLetter
	renewals    atomic.Int32
	renewErr    error
	sendErr     error
}

type sent struct {
	queue string
	env   *envelope.Envelope
	opts  *bus.SendOptions
}
type abandon struct {
	id    string
	delay time.Duration
}
type deadLetter struct{ id, reason, description string }

func (f *fakeBus) Send(_ context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return f.sendErr
	}
	f.sent = append(f.sent, sent{queue, env, opts})
	return nil
}

func (f *fakeBus) Receive(_ context.Context, _ string, max int, _ time.Duration) ([]*bus.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(max, len(f.queued))
	out := f.queued[:n]
	f.queued = f.queued[n:]
	return out, nil
}

func (f *fakeBus) Complete(_ context.Context, m *bus.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.completed = append(f.completed, m.Envelope.ID)
	return nil
}

func (f *fakeBus) Abandon(_ context.Context, m *bus.Message, delay time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.abandoned = append(f.abandoned, abandon{m.Envelope.ID, delay})
	return nil
}

func (f *fakeBus) DeadLetter(_ context.Context, m *bus.Message, reason, desc string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := ""
	if m.Envelope != nil {
		id = m.Envelope.ID
	}
	f.deadLetters = append(f.deadLetters, deadLetter{id, reason, desc})
	return nil
}

func (f *fakeBus) RenewLock(context.Context, *bus.Message, time.Duration) error {
	f.renewals.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewErr
}

func (f *fakeBus) push(ms ...*bus.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = append(f.queued, ms...)
}

func (f *fakeBus) settled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.completed) + len(f.abandoned) + len(f.deadLetters)
}

func fromConnector(id string, delivery int) *bus.Message {
	env := &envelope.Envelope{
		ID: id, Kind: envelope.KindCloud, From: &envelope.Identity{Tenant: "contoso", Connector: "agent-1"},
		Headers: map[string]string{"type": "ping"}, Body: []byte("ping"), CreatedAt: time.Now().UTC(),
	}
	return bus.NewMessage(bus.QueueCloud, env, nil, delivery, time.Now().Add(time.Minute), nil)
}

func newClient(t *testing.T, fb *fakeBus, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Bus: fb, Service: "relayserver", Logger: slog.New(slog.DiscardHandler), PollMin: time.Millisecond, PollMax: 5 * time.Millisecond, DelayedRetryBase: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	require.NoError(t, err)
	return c
}

// runUntil runs the client until settled() reaches n, then stops it.
func runUntil(t *testing.T, c *Client, fb *fakeBus, n int, h HandlerFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	require.Eventually(t, func() bool { return fb.settled() >= n }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestConfigValidate(t *testing.T) {
	fb := &fakeBus{}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no bus", Config{Service: "s"}, "Bus"},
		{"no service", Config{Bus: fb}, "Service"},
		{"bad service", Config{Bus: fb, Service: "a b"}, "from.service"},
		{"immediate", Config{Bus: fb, Service: "s", ImmediateRetries: -2}, "ImmediateRetries"},
		{"delayed", Config{Bus: fb, Service: "s", DelayedRetries: -2}, "DelayedRetries"},
		{"base", Config{Bus: fb, Service: "s", DelayedRetryBase: -1}, "DelayedRetryBase"},
		{"lock", Config{Bus: fb, Service: "s", Lock: time.Millisecond}, "Lock"},
		{"concurrency", Config{Bus: fb, Service: "s", Concurrency: -1}, "Concurrency"},
		{"poll", Config{Bus: fb, Service: "s", PollMin: time.Second, PollMax: time.Millisecond}, "PollMin"},
		{"dedup", Config{Bus: fb, Service: "s", DedupSize: -1}, "DedupSize"},
		{"dedup ttl", Config{Bus: fb, Service: "s", DedupTTL: -1}, "DedupTTL"},
		{"drain", Config{Bus: fb, Service: "s", DrainTimeout: -1}, "DrainTimeout"},
		{"wake url", Config{Bus: fb, Service: "s", WakeURL: "gateway:8080"}, "WakeURL"},
		{"wake url without host", Config{Bus: fb, Service: "s", WakeURL: "https://"}, "WakeURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			_, err = New(tt.cfg)
			require.Error(t, err)
		})
	}
	require.NoError(t, Config{Bus: fb, Service: "relayserver"}.Validate())
}

// Every send is followed by a wake of the gateway that started after it:
// wakes coalesce while one is in flight, but the last send is never left
// to the route poll.
func TestSendWakesTheGateway(t *testing.T) {
	var wakes atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != sessionproto.WakePath {
			http.NotFound(w, r)
			return
		}
		if wakes.Add(1) == 1 {
			<-release // the first wake is slow
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := newClient(t, &fakeBus{}, func(cfg *Config) { cfg.WakeURL = srv.URL + "/" })
	_, err := c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{Body: []byte("1")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return wakes.Load() == 1 }, 5*time.Second, time.Millisecond)
	for range 5 { // while the first wake is in flight
		_, err := c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{Body: []byte("2")})
		require.NoError(t, err)
	}
	close(release)
	require.Eventually(t, func() bool { return wakes.Load() == 2 }, 5*time.Second, time.Millisecond, "one more wake for the sends during the first")
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, int64(2), wakes.Load(), "coalesced")
}

func TestSendToConnector(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	id, err := c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{Body: []byte("hi"), Headers: map[string]string{"type": "cmd"}, ContentType: "text/plain"})
	require.NoError(t, err)
	require.Len(t, fb.sent, 1)
	s := fb.sent[0]
	assert.Equal(t, bus.QueueConnectors, s.queue)
	assert.Equal(t, id, s.env.ID)
	assert.Equal(t, envelope.KindTargeted, s.env.Kind)
	assert.Equal(t, "contoso", s.env.Tenant)
	assert.Equal(t, "agent-1", s.env.Connector)
	assert.Equal(t, &envelope.Identity{Service: "relayserver"}, s.env.From)
	assert.Equal(t, []byte("hi"), s.env.Body)
	require.NoError(t, s.env.Validate())

	// A caller-chosen id is kept (idempotent sends).
	id, err = c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{ID: "order-7"})
	require.NoError(t, err)
	assert.Equal(t, "order-7", id)
}

func TestSendSignsWithTheServiceKey(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	fb := &fakeBus{}
	c := newClient(t, fb, func(c *Config) { c.SigningKey = key })
	_, err = c.SendToConnector(context.Background(), "contoso", "agent-1", OutMessage{Body: []byte("hi")})
	require.NoError(t, err)
	_, err = c.Broadcast(context.Background(), "contoso", "chat", OutMessage{Body: []byte("all")})
	require.NoError(t, err)
	require.Len(t, fb.sent, 2)
	for _, s := range fb.sent {
		assert.NoError(t, s.env.VerifySignature(&key.PublicKey), s.env.Kind)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	assert.ErrorContains(t, Config{Bus: fb, Service: "s", SigningKey: p384}.Validate(), "SigningKey")
}

func TestSendRejects(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"bad tenant", func() error { _, err := c.SendToConnector(ctx, "", "a", OutMessage{}); return err }, "tenant id is empty"},
		{"bad connector", func() error { _, err := c.SendToConnector(ctx, "t", "a/b", OutMessage{}); return err }, "connector id"},
		{"reserved header", func() error {
			_, err := c.SendToConnector(ctx, "t", "a", OutMessage{Headers: map[string]string{"bote-tenant": "other"}})
			return err
		}, "reserved header"},
		{"broadcast bad topic", func() error { _, err := c.Broadcast(ctx, "t", "", OutMessage{}); return err }, "topic"},
		{"broadcast bad tenant", func() error { _, err := c.Broadcast(ctx, "-t", "chat", OutMessage{}); return err }, "tenant id"},
		{"reply to nothing", func() error { _, err := c.Reply(ctx, &Message{ID: "x"}, OutMessage{}); return err }, "no connector sender"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.send()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Empty(t, fb.sent, "nothing invalid may reach the bus")

	fb.sendErr = errors.New("bus down")
	_, err := c.SendToConnector(ctx, "t", "a", OutMessage{})
	assert.ErrorContains(t, err, "bus down")
}

func TestBroadcastAndReply(t *testing.T) {
	fb := &fakeBus{}
	c := newClient(t, fb, nil)
	ctx := context.Background()
	_, err := c.Broadcast(ctx, "contoso", "chat", OutMessage{Body: []byte("all")})
	require.NoError(t, err)
	assert.Equal(t, envelope.KindBroadcast, fb.sent[0].env.Kind)
	assert.Equal(t, "chat", fb.sent[0].env.Topic)
	assert.Empty(t, fb.sent[0].env.Connector)

	req := &Message{ID: "req-1", From: envelope.Identity{Tenant: "contoso", Connector: "agent-2"}}
	_, err = c.Reply(ctx, req, OutMessage{Body: []byte("pong"), CorrelationID: "ignored"})
	require.NoError(t, err)
	r := fb.sent[1].env
	assert.Equal(t, "req-1", r.CorrelationID)
	assert.Equal(t, "contoso", r.Tenant)
	assert.Equal(t, "agent-2", r.Connector)
}

func TestHandleSuccessGivesVerifiedIdentity(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("m1", 1))
	c := newClient(t, fb, nil)
	var got *Message
	runUntil(t, c, fb, 1, func(_ context.Context, m *Message) error { got = m; return nil })
	require.NotNil(t, got)
	assert.Equal(t, envelope.Identity{Tenant: "contoso", Connector: "agent-1"}, got.From)
	assert.Equal(t, []byte("ping"), got.Body)
	assert.Equal(t, 1, got.Attempt)
	assert.Equal(t, []string{"m1"}, fb.completed)
}

func TestUnverifiedMessagesAreDeadLettered(t *testing.T) {
	noFrom := fromConnector("a", 1)
	noFrom.Envelope.From = nil
	service := fromConnector("b", 1)
	service.Envelope.From = &envelope.Identity{Service: "evil"}
	targeted := fromConnector("c", 1)
	targeted.Envelope.Kind = envelope.KindTargeted
	undecoded := bus.NewMessage(bus.QueueCloud, nil, []byte("junk"), 1, time.Now(), nil)

	fb := &fakeBus{}
	fb.push(noFrom, service, targeted, undecoded)
	c := newClient(t, fb, nil)
	var calls atomic.Int32
	runUntil(t, c, fb, 4, func(context.Context, *Message) error { calls.Add(1); return nil })
	assert.Zero(t, calls.Load(), "handler must never see an unverified message")
	require.Len(t, fb.deadLetters, 4)
	for _, d := range fb.deadLetters {
		assert.Equal(t, "unverified sender", d.reason)
	}
}

// With GatewayKeys, only what the gateway signed reaches the handler: a
// well-formed connector message from anything else holding send rights on
// the cloud queue is dead-lettered. WorkerKeys, the field's name before the
// rename, still works (with one warning); given both, GatewayKeys is used.
func TestGatewayKeysRequireTheGatewaysSignature(t *testing.T) {
	gatewayKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	oldKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	forgerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	keys := []*ecdsa.PublicKey{&gatewayKey.PublicKey, &oldKey.PublicKey}
	for _, tt := range []struct {
		name  string
		mod   func(*Config)
		warns int
	}{
		{"GatewayKeys", func(c *Config) { c.GatewayKeys = keys }, 0},
		{"WorkerKeys, deprecated", func(c *Config) { c.WorkerKeys = keys }, 1},
		{"both: GatewayKeys is used", func(c *Config) { c.GatewayKeys, c.WorkerKeys = keys, []*ecdsa.PublicKey{&forgerKey.PublicKey} }, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sign := func(m *bus.Message, k *ecdsa.PrivateKey) *bus.Message {
				require.NoError(t, m.Envelope.Sign(k))
				return m
			}
			fb := &fakeBus{}
			fb.push(sign(fromConnector("ok", 1), gatewayKey), sign(fromConnector("ok-old", 1), oldKey),
				fromConnector("unsigned", 1), sign(fromConnector("forged", 1), forgerKey))
			var logs bytes.Buffer
			c := newClient(t, fb, func(c *Config) {
				tt.mod(c)
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			assert.Equal(t, tt.warns, strings.Count(logs.String(), `msg="deprecated name`), logs.String())
			var mu sync.Mutex
			var handled []string
			runUntil(t, c, fb, 4, func(_ context.Context, m *Message) error {
				mu.Lock()
				defer mu.Unlock()
				handled = append(handled, m.ID)
				return nil
			})
			assert.ElementsMatch(t, []string{"ok", "ok-old"}, handled)
			require.Len(t, fb.deadLetters, 2)
			for _, d := range fb.deadLetters {
				assert.Equal(t, "unverified sender", d.reason)
			}
		})
	}
	assert.ErrorContains(t, Config{Bus: &fakeBus{}, Service: "s", WorkerKeys: []*ecdsa.PublicKey{nil}}.Validate(), "WorkerKeys")
	assert.ErrorContains(t, Config{Bus: &fakeBus{}, Service: "s", GatewayKeys: []*ecdsa.PublicKey{nil}}.Validate(), "GatewayKeys")
}

func TestRetries(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name          string
		delivery      int
		failFirst     int // handler fails this many times, then succeeds
		permanent     bool
		wantCalls     int
		wantCompleted bool
		wantDelay     time.Duration // > 0: abandoned with this delay
		wantDLReason  string
	}{
		{"succeeds after immediate retries", 1, 2, false, 3, true, 0, ""},
		{"immediate retries exhausted: first delayed retry", 1, 100, false, 4, false, 10 * time.Second, ""},
		{"third delivery: third delayed retry", 3, 100, false, 4, false, 30 * time.Second, ""},
		{"delayed retries exhausted: dead letter", 4, 100, false, 4, false, 0, "handler failed after 3 immediate and 3 delayed retries"},
		{"permanent: dead letter at once", 1, 100, true, 1, false, 0, "handler failed permanently"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBus{}
			fb.push(fromConnector("m", tt.delivery))
			c := newClient(t, fb, nil)
			var calls int
			runUntil(t, c, fb, 1, func(_ context.Context, m *Message) error {
				calls++
				assert.Equal(t, calls, m.Attempt)
				if calls <= tt.failFirst {
					if tt.permanent {
						return Permanent(boom)
					}
					return boom
				}
				return nil
			})
			assert.Equal(t, tt.wantCalls, calls)
			assert.Equal(t, tt.wantCompleted, len(fb.completed) == 1)
			if tt.wantDelay > 0 {
				require.Len(t, fb.abandoned, 1)
				assert.Equal(t, tt.wantDelay, fb.abandoned[0].delay)
			} else {
				assert.Empty(t, fb.abandoned)
			}
			if tt.wantDLReason != "" {
				require.Len(t, fb.deadLetters, 1)
				assert.Equal(t, tt.wantDLReason, fb.deadLetters[0].reason)
				assert.Equal(t, "boom", fb.deadLetters[0].description)
			} else {
				assert.Empty(t, fb.deadLetters)
			}
		})
	}
}

func TestNoRetriesConfigured(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("m", 1))
	c := newClient(t, fb, func(c *Config) { c.ImmediateRetries, c.DelayedRetries = -1, -1 })
	var calls int
	runUntil(t, c, fb, 1, func(context.Context, *Message) error { calls++; return errors.New("no") })
	assert.Equal(t, 1, calls)
	require.Len(t, fb.deadLetters, 1)
	assert.Equal(t, "handler failed after 0 immediate and 0 delayed retries", fb.deadLetters[0].reason)
}

func TestPanicIsAFailure(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("m", 4))
	c := newClient(t, fb, nil)
	runUntil(t, c, fb, 1, func(context.Context, *Message) error { panic("bad input") })
	require.Len(t, fb.deadLetters, 1)
	assert.Contains(t, fb.deadLetters[0].description, "bad input")
}

func TestDuplicatesAreHandledOnce(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("same", 1))
	c := newClient(t, fb, func(c *Config) { c.Concurrency = 1 })
	var calls atomic.Int32
	h := func(context.Context, *Message) error { calls.Add(1); return nil }
	runUntil(t, c, fb, 1, h)
	fb.push(fromConnector("same", 2), fromConnector("other", 1))
	runUntil(t, c, fb, 3, h)
	assert.Equal(t, int32(2), calls.Load())
	assert.ElementsMatch(t, []string{"same", "same", "other"}, fb.completed)
}

func TestConcurrentCopyIsPutBack(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("dup", 1), fromConnector("dup", 1))
	c := newClient(t, fb, func(c *Config) { c.Concurrency = 2; c.Lock = 2 * time.Second })
	release := make(chan struct{})
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, HandlerFunc(func(context.Context, *Message) error { calls.Add(1); <-release; return nil }))
	}()
	require.Eventually(t, func() bool { return fb.settled() == 1 }, 5*time.Second, time.Millisecond)
	fb.mu.Lock()
	require.Len(t, fb.abandoned, 1)
	assert.Equal(t, time.Second, fb.abandoned[0].delay)
	fb.mu.Unlock()
	close(release)
	require.Eventually(t, func() bool { return fb.settled() == 2 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, int32(1), calls.Load())
}

func TestLockRenewalAndLoss(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("long", 1))
	c := newClient(t, fb, func(c *Config) { c.Lock = time.Second })
	runUntil(t, c, fb, 1, func(ctx context.Context, _ *Message) error {
		time.Sleep(1200 * time.Millisecond) // two renewals at 500ms and 1s
		return nil
	})
	assert.GreaterOrEqual(t, fb.renewals.Load(), int32(2))

	fb = &fakeBus{renewErr: bus.ErrLockLost}
	fb.push(fromConnector("lost", 1))
	c = newClient(t, fb, func(c *Config) { c.Lock = time.Second })
	var cancelled atomic.Bool
	runUntil(t, c, fb, 1, func(ctx context.Context, _ *Message) error {
		select {
		case <-ctx.Done():
			cancelled.Store(true)
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return nil
		}
	})
	assert.True(t, cancelled.Load(), "handler context must be cancelled when the lock is lost")
}

func TestGracefulStopFinishesInFlight(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("m", 1))
	c := newClient(t, fb, nil)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var handlerCtxErr error
	go func() {
		done <- c.Run(ctx, HandlerFunc(func(hctx context.Context, _ *Message) error {
			close(started)
			time.Sleep(200 * time.Millisecond)
			handlerCtxErr = hctx.Err()
			return nil
		}))
	}()
	<-started
	cancel()
	require.NoError(t, <-done)
	assert.NoError(t, handlerCtxErr, "in-flight handler keeps its context during the drain")
	assert.Equal(t, []string{"m"}, fb.completed)

	// A second Run while one runs is refused.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { _ = c.Run(ctx2, HandlerFunc(func(context.Context, *Message) error { return nil })) }()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.running
	}, time.Second, time.Millisecond)
	assert.ErrorIs(t, c.Run(context.Background(), HandlerFunc(func(context.Context, *Message) error { return nil })), ErrRunning)
}

func TestDrainTimeoutCancelsHandlers(t *testing.T) {
	fb := &fakeBus{}
	fb.push(fromConnector("stuck", 4))
	c := newClient(t, fb, func(c *Config) { c.DrainTimeout = 50 * time.Millisecond })
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, HandlerFunc(func(hctx context.Context, _ *Message) error {
			close(started)
			<-hctx.Done()
			return hctx.Err()
		}))
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain timeout")
	}
}

func TestDedupBoundsAndTTL(t *testing.T) {
	now := time.Unix(0, 0)
	d := seen.New(3, time.Minute).WithClock(func() time.Time { return now })
	for _, id := range []string{"a", "b", "c", "d"} {
		d.Add(id)
	}
	assert.Equal(t, 3, d.Len())
	assert.False(t, d.Has("a"), "oldest evicted beyond the size bound")
	assert.True(t, d.Has("d"))
	now = now.Add(2 * time.Minute)
	assert.False(t, d.Has("d"), "expired after the TTL")
	d.Add("b") // refresh
	assert.True(t, d.Has("b"))
}
