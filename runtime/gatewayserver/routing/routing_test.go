package routing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
)

type settled struct {
	op     string // complete, abandon, dead-letter
	delay  time.Duration
	reason string
}

type fakeBus struct {
	mu       sync.Mutex
	pending  []*bus.Message
	settled  map[string]settled
	receives int
	locks    []time.Duration // asked for by Receive
	renewals map[string][]time.Time
}

func (b *fakeBus) Receive(_ context.Context, _ string, _ int, lock time.Duration) ([]*bus.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.receives++
	b.locks = append(b.locks, lock)
	out := b.pending
	b.pending = nil
	return out, nil
}

func (b *fakeBus) set(m *bus.Message, s settled) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settled[m.Envelope.ID] = s
	return nil
}

func (b *fakeBus) RenewLock(_ context.Context, m *bus.Message, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.renewals == nil {
		b.renewals = map[string][]time.Time{}
	}
	b.renewals[m.Envelope.ID] = append(b.renewals[m.Envelope.ID], time.Now())
	return nil
}

func (b *fakeBus) Complete(_ context.Context, m *bus.Message) error {
	return b.set(m, settled{op: "complete"})
}
func (b *fakeBus) Abandon(_ context.Context, m *bus.Message, d time.Duration) error {
	return b.set(m, settled{op: "abandon", delay: d})
}
func (b *fakeBus) DeadLetter(_ context.Context, m *bus.Message, reason, _ string) error {
	return b.set(m, settled{op: "dead-letter", reason: reason})
}

type fakeQueues struct {
	mu    sync.Mutex
	got   map[ids.ConnectorID][]string
	fails map[ids.ConnectorID]int // fail this many times
}

func (q *fakeQueues) Enqueue(_ context.Context, id ids.ConnectorID, text string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fails[id] > 0 {
		q.fails[id]--
		return errors.New("storage unavailable")
	}
	q.got[id] = append(q.got[id], text)
	return nil
}

func (q *fakeQueues) count(id ids.ConnectorID) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.got[id])
}

type fakeSubs map[string][]string // tenant|topic → connectors

func (s fakeSubs) Subscribers(_ context.Context, tenant, topic string) ([]string, error) {
	return s[tenant+"|"+topic], nil
}

type fakeNudger struct {
	mu  sync.Mutex
	got map[ids.ConnectorID]int
}

func (n *fakeNudger) Nudge(_ context.Context, id ids.ConnectorID) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got[id]++
	return nil
}

type fakeClaims struct{ puts int }

func (c *fakeClaims) Put(_ context.Context, body []byte, _ string) (*envelope.Claim, error) {
	c.puts++
	return &envelope.Claim{Container: "bote-claims", Blob: "b", Size: int64(len(body)), SHA256: strings.Repeat("a", 64)}, nil
}

func (c *fakeClaims) Sign(_ context.Context, cl *envelope.Claim, _ time.Duration) error {
	cl.URL = "http://blob/b?sig"
	return nil
}

type fakeDirectory map[ids.ConnectorID]bool

func (d fakeDirectory) Known(id ids.ConnectorID) bool { return d[id] }

type harness struct {
	bus    *fakeBus
	queues *fakeQueues
	nudger *fakeNudger
	claims *fakeClaims
	router *Router
}

func newHarness(t *testing.T, mut func(*Config)) *harness {
	t.Helper()
	h := &harness{
		bus:    &fakeBus{settled: map[string]settled{}},
		queues: &fakeQueues{got: map[ids.ConnectorID][]string{}, fails: map[ids.ConnectorID]int{}},
		nudger: &fakeNudger{got: map[ids.ConnectorID]int{}},
		claims: &fakeClaims{},
	}
	cfg := Config{
		Bus: h.bus, Queues: h.queues, Nudger: h.nudger, Claims: h.claims,
		Subscribers: fakeSubs{
			"a|chat": {"a1", "a2", "a3"},
			"b|chat": {"b1"},
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	if mut != nil {
		mut(&cfg)
	}
	r, err := New(cfg)
	require.NoError(t, err)
	r.sleep = func(context.Context, time.Duration) error { return nil }
	h.router = r
	return h
}

func targeted(id, tenant, connector string) *envelope.Envelope {
	return &envelope.Envelope{ID: id, Kind: envelope.KindTargeted, Tenant: tenant, Connector: connector,
		From: &envelope.Identity{Service: "svc"}, Body: []byte("hi"), CreatedAt: time.Unix(1e9, 0).UTC()}
}

func broadcast(id, tenant, topic string) *envelope.Envelope {
	return &envelope.Envelope{ID: id, Kind: envelope.KindBroadcast, Tenant: tenant, Topic: topic,
		From: &envelope.Identity{Service: "svc"}, Body: []byte("hi all"), CreatedAt: time.Unix(1e9, 0).UTC()}
}

func with(env *envelope.Envelope, mut func(*envelope.Envelope)) *envelope.Envelope {
	mut(env)
	return env
}

func (h *harness) handle(env *envelope.Envelope, delivery int) settled {
	m := bus.NewMessage(bus.QueueConnectors, env, nil, delivery, time.Now().Add(time.Minute), nil)
	h.router.Handle(context.Background(), m)
	return h.bus.settled[env.ID]
}

func pair(t, c string) ids.ConnectorID { return ids.ConnectorID{Tenant: ids.TenantID(t), Connector: c} }

func TestTargetedGoesToThatConnectorOnly(t *testing.T) {
	h := newHarness(t, nil)
	assert.Equal(t, settled{op: "complete"}, h.handle(targeted("m1", "a", "a2"), 1))
	assert.Equal(t, 1, h.queues.count(pair("a", "a2")))
	assert.Len(t, h.queues.got, 1)
	env, err := envelope.Decode([]byte(h.queues.got[pair("a", "a2")][0]))
	require.NoError(t, err)
	assert.Equal(t, "m1", env.ID)
	assert.Equal(t, "hi", string(env.Body))
}

func TestBroadcastReachesSubscribersOfThatTenantOnly(t *testing.T) {
	h := newHarness(t, nil)
	assert.Equal(t, "complete", h.handle(broadcast("m1", "a", "chat"), 1).op)
	for _, c := range []string{"a1", "a2", "a3"} {
		assert.Equal(t, 1, h.queues.count(pair("a", c)), c)
	}
	assert.Zero(t, h.queues.count(pair("b", "b1")))
	assert.Len(t, h.queues.got, 3)
}

func TestBroadcastWithoutSubscribersCompletes(t *testing.T) {
	h := newHarness(t, nil)
	assert.Equal(t, "complete", h.handle(broadcast("m1", "a", "nobody"), 1).op)
	assert.Empty(t, h.queues.got)
}

func TestPermanentFailuresGoToErrorQueueAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		env    *envelope.Envelope
		mut    func(*Config)
		reason string
	}{
		{
			name:   "cloud kind on the connectors queue",
			env:    &envelope.Envelope{ID: "c1", Kind: envelope.KindCloud, From: &envelope.Identity{Tenant: "a", Connector: "a1"}, CreatedAt: time.Now()},
			reason: ReasonUnroutable,
		},
		{
			name:   "unknown connector",
			env:    targeted("c2", "a", "ghost"),
			mut:    func(c *Config) { c.Directory = fakeDirectory{pair("a", "a1"): true} },
			reason: ReasonUnknownConnector,
		},
		{
			name:   "too large without claim store",
			env:    &envelope.Envelope{ID: "c3", Kind: envelope.KindTargeted, Tenant: "a", Connector: "a1", From: &envelope.Identity{Service: "svc"}, Body: make([]byte, 70<<10), CreatedAt: time.Now()},
			mut:    func(c *Config) { c.Claims = nil },
			reason: ReasonTooLarge,
		},
		// Anything with send rights on the bus can put these there; none
		// may reach a connector.
		{
			name:   "no sender",
			env:    with(targeted("s1", "a", "a1"), func(e *envelope.Envelope) { e.From = nil }),
			reason: ReasonUnverifiedSender,
		},
		{
			name:   "connector identity as sender",
			env:    with(targeted("s2", "a", "a1"), func(e *envelope.Envelope) { e.From = &envelope.Identity{Tenant: "b", Connector: "admin"} }),
			reason: ReasonUnverifiedSender,
		},
		{
			name:   "broadcast with connector identity as sender",
			env:    with(broadcast("s3", "a", "chat"), func(e *envelope.Envelope) { e.From = &envelope.Identity{Tenant: "a", Connector: "a1"} }),
			reason: ReasonUnverifiedSender,
		},
		{
			name:   "service not allowed",
			env:    with(targeted("s4", "a", "a1"), func(e *envelope.Envelope) { e.From.Service = "intruder" }),
			mut:    func(c *Config) { c.Services = []string{"svc", "billing"} },
			reason: ReasonUnverifiedSender,
		},
		{
			name:   "reserved header",
			env:    with(targeted("s5", "a", "a1"), func(e *envelope.Envelope) { e.Headers = map[string]string{"Bote-From": "b/admin", "kind": "x"} }),
			reason: ReasonReservedHeader,
		},
		{
			name: "protocol header in another spelling",
			env: with(targeted("s7", "a", "a1"), func(e *envelope.Envelope) {
				e.Headers = map[string]string{"Bote-Deadline": envelope.FormatTime(time.Now().Add(time.Hour))}
			}),
			reason: ReasonReservedHeader,
		},
		{
			name:   "call whose caller gave up",
			env:    with(targeted("e1", "a", "a1"), func(e *envelope.Envelope) { e.SetProtocolHeader(envelope.HeaderDeadline, time.Now().Add(-time.Second)) }),
			reason: ReasonExpired,
		},
		{
			name: "broadcast past its time to live",
			env: with(broadcast("e2", "a", "chat"), func(e *envelope.Envelope) {
				e.SetProtocolHeader(envelope.HeaderExpiresAt, time.Now().Add(-time.Second))
			}),
			reason: ReasonExpired,
		},
		{
			name:   "reserved header in another spelling on a broadcast",
			env:    with(broadcast("s6", "a", "chat"), func(e *envelope.Envelope) { e.Headers = map[string]string{"x_tenant_id": "b"} }),
			reason: ReasonReservedHeader,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mut)
			assert.Equal(t, settled{op: "dead-letter", reason: tt.reason}, h.handle(tt.env, 1))
			assert.Empty(t, h.queues.got)
		})
	}
}

func TestAllowedServicesAreRouted(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Services = []string{"svc"} })
	assert.Equal(t, settled{op: "complete"}, h.handle(targeted("m1", "a", "a1"), 1))
	assert.Equal(t, settled{op: "complete"}, h.handle(with(targeted("m2", "a", "a1"), func(e *envelope.Envelope) { e.Headers = map[string]string{"trace_id": "1"} }), 1))
	assert.Equal(t, 2, h.queues.count(pair("a", "a1")))
}

// The protocol headers botecloud sets (exact spelling) are routed; a late
// reply to a call is discarded and counted, not an error.
func TestProtocolHeadersAndLateReplies(t *testing.T) {
	h := newHarness(t, nil)
	later := time.Now().Add(time.Hour)
	call := with(targeted("call", "a", "a1"), func(e *envelope.Envelope) {
		e.SetProtocolHeader(envelope.HeaderDeadline, later)
		e.SetProtocolHeader(envelope.HeaderExpiresAt, later)
	})
	assert.Equal(t, settled{op: "complete"}, h.handle(call, 1))
	env, err := envelope.Decode([]byte(h.queues.got[pair("a", "a1")][0]))
	require.NoError(t, err)
	assert.True(t, later.Equal(env.Deadline()))

	late := with(targeted("late", "a", "a1"), func(e *envelope.Envelope) {
		e.CorrelationID = "call"
		e.SetProtocolHeader(envelope.HeaderDeadline, time.Now().Add(-time.Second))
	})
	assert.Equal(t, settled{op: "complete"}, h.handle(late, 1))
	assert.Equal(t, 1, h.queues.count(pair("a", "a1")))
	assert.Equal(t, 1.0, testutil.ToFloat64(h.router.m.LateReplies))
}

// With service keys, only a message signed with its sender's key is
// routed: naming an allowed service is not enough.
func TestServiceKeysRequireTheSendersSignature(t *testing.T) {
	svcKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	nextKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	h := newHarness(t, func(c *Config) {
		// svc is rotating: both its keys are accepted.
		c.ServiceKeys = map[string][]*ecdsa.PublicKey{"svc": {&nextKey.PublicKey, &svcKey.PublicKey}, "billing": {&otherKey.PublicKey}}
	})
	signed := func(env *envelope.Envelope, key *ecdsa.PrivateKey) *envelope.Envelope {
		require.NoError(t, env.Sign(key))
		return env
	}
	assert.Equal(t, settled{op: "complete"}, h.handle(signed(targeted("ok", "a", "a1"), svcKey), 1))
	assert.Equal(t, settled{op: "complete"}, h.handle(signed(broadcast("ok-bc", "a", "chat"), nextKey), 1))
	dead := settled{op: "dead-letter", reason: ReasonUnverifiedSender}
	assert.Equal(t, dead, h.handle(targeted("unsigned", "a", "a1"), 1))
	assert.Equal(t, dead, h.handle(signed(targeted("other-key", "a", "a1"), otherKey), 1), "billing's key cannot sign as svc")
	assert.Equal(t, dead, h.handle(with(signed(targeted("retargeted", "a", "a1"), svcKey), func(e *envelope.Envelope) { e.Connector = "a2" }), 1))
	assert.Equal(t, dead, h.handle(signed(with(targeted("unknown", "a", "a1"), func(e *envelope.Envelope) { e.From.Service = "intruder" }), svcKey), 1))
	assert.Equal(t, 2, h.queues.count(pair("a", "a1")), "the signed targeted message and broadcast")
	assert.Equal(t, 1, h.queues.count(pair("a", "a2")), "the signed broadcast only")
}

func TestLargeBodyTravelsByClaimCheck(t *testing.T) {
	h := newHarness(t, nil)
	env := broadcast("big", "a", "chat")
	env.Body = make([]byte, 100<<10)
	assert.Equal(t, "complete", h.handle(env, 1).op)
	assert.Equal(t, 1, h.claims.puts, "one blob shared by all subscribers")
	got, err := envelope.Decode([]byte(h.queues.got[pair("a", "a1")][0]))
	require.NoError(t, err)
	require.NotNil(t, got.Claim)
	assert.Equal(t, "http://blob/b?sig", got.Claim.URL)
	assert.Empty(t, got.Body)
}

func TestRetries(t *testing.T) {
	t.Run("immediate retry succeeds", func(t *testing.T) {
		h := newHarness(t, nil)
		h.queues.fails[pair("a", "a1")] = 3
		assert.Equal(t, "complete", h.handle(targeted("m", "a", "a1"), 1).op)
		assert.Equal(t, 1, h.queues.count(pair("a", "a1")))
	})
	t.Run("delayed retries grow then error queue", func(t *testing.T) {
		h := newHarness(t, nil)
		h.queues.fails[pair("a", "a1")] = 1000
		for delivery, want := range map[int]settled{
			1: {op: "abandon", delay: 10 * time.Second},
			2: {op: "abandon", delay: 20 * time.Second},
			3: {op: "abandon", delay: 30 * time.Second},
			4: {op: "dead-letter", reason: ReasonRetriesExhausted},
		} {
			assert.Equal(t, want, h.handle(targeted("m", "a", "a1"), delivery), "delivery %d", delivery)
		}
	})
}

func TestRedeliveredBroadcastDoesNotDuplicate(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ImmediateRetries = -1 })
	h.queues.fails[pair("a", "a3")] = 1
	env := broadcast("m1", "a", "chat")
	assert.Equal(t, "abandon", h.handle(env, 1).op)
	assert.Equal(t, "complete", h.handle(env, 2).op)
	for _, c := range []string{"a1", "a2", "a3"} {
		assert.Equal(t, 1, h.queues.count(pair("a", c)), c)
	}
	// The cloud sending the same id again is a duplicate too.
	assert.Equal(t, "complete", h.handle(targeted("m1", "a", "a1"), 1).op)
	assert.Equal(t, 1, h.queues.count(pair("a", "a1")))
}

func TestRunRoutesAndNudgesThenDrainsOnStop(t *testing.T) {
	h := newHarness(t, nil)
	for _, env := range []*envelope.Envelope{targeted("m1", "a", "a1"), targeted("m2", "a", "a1"), broadcast("m3", "b", "chat")} {
		h.bus.pending = append(h.bus.pending, bus.NewMessage(bus.QueueConnectors, env, nil, 1, time.Now().Add(time.Minute), nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.router.Run(ctx) }()
	require.Eventually(t, func() bool {
		h.bus.mu.Lock()
		defer h.bus.mu.Unlock()
		return len(h.bus.settled) == 3
	}, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 2, h.queues.count(pair("a", "a1")))
	assert.Equal(t, 1, h.queues.count(pair("b", "b1")))
	h.nudger.mu.Lock()
	defer h.nudger.mu.Unlock()
	assert.GreaterOrEqual(t, h.nudger.got[pair("a", "a1")], 1)
	assert.LessOrEqual(t, h.nudger.got[pair("a", "a1")], 2, "nudges are coalesced")
	assert.Equal(t, 1, h.nudger.got[pair("b", "b1")])
}

// A wake makes an idle router receive at once, however long its poll has
// grown: the poll is only a safety net.
func TestWakeRoutesAtOnceDespiteALongPoll(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Idle, c.IdleMax = 20*time.Millisecond, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.router.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	time.Sleep(1500 * time.Millisecond) // the poll has backed off to over a second
	h.bus.mu.Lock()
	h.bus.pending = append(h.bus.pending, bus.NewMessage(bus.QueueConnectors, targeted("m1", "a", "a1"), nil, 1, time.Now().Add(time.Minute), nil))
	h.bus.mu.Unlock()
	start := time.Now()
	h.router.Wake()
	require.Eventually(t, func() bool { return h.queues.count(pair("a", "a1")) == 1 }, 5*time.Second, time.Millisecond)
	assert.Less(t, time.Since(start), 200*time.Millisecond)
}

// A flood of wakes costs no more receives than polling at Idle would.
func TestWakesAreSpacedByIdle(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Idle, c.IdleMax = 50*time.Millisecond, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.router.Run(ctx) }()
	stop := time.After(500 * time.Millisecond)
flood:
	for {
		select {
		case <-stop:
			break flood
		default:
			h.router.Wake()
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	require.NoError(t, <-done)
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	assert.LessOrEqual(t, h.bus.receives, 500/50+2)
	assert.GreaterOrEqual(t, h.bus.receives, 5, "wakes are honoured")
}

func TestConfigValidate(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"Bus":         func(c *Config) { c.Bus = nil },
		"Queues":      func(c *Config) { c.Queues = nil },
		"Subscribers": func(c *Config) { c.Subscribers = nil },
		"Concurrency": func(c *Config) { c.Concurrency = -1 },
		"FanOut":      func(c *Config) { c.FanOut = -1 },
		"FanOut ":     func(c *Config) { c.FanOut = MaxFanOut + 1 },
		"Lock":        func(c *Config) { c.Lock = -time.Second },
		"Lock ":       func(c *Config) { c.Lock = time.Second },
		"Services":    func(c *Config) { c.Services = []string{"bad name"} },
		"ServiceKeys": func(c *Config) { c.ServiceKeys = map[string][]*ecdsa.PublicKey{"svc": {nil}} },
	} {
		c := Config{Bus: &fakeBus{}, Queues: &fakeQueues{}, Subscribers: fakeSubs{}}
		mut(&c)
		assert.ErrorContains(t, c.Validate(), name)
	}
}

// gatedQueues counts enqueues in flight and holds each until released.
type gatedQueues struct {
	mu            sync.Mutex
	inFlight, top int
	done          int
	release       chan struct{}
}

func (q *gatedQueues) Enqueue(context.Context, ids.ConnectorID, string) error {
	q.mu.Lock()
	q.inFlight++
	q.top = max(q.top, q.inFlight)
	q.mu.Unlock()
	<-q.release
	q.mu.Lock()
	q.inFlight--
	q.done++
	q.mu.Unlock()
	return nil
}

func (q *gatedQueues) snapshot() (inFlight, top, done int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inFlight, q.top, q.done
}

// Two broadcasts routed at once share one bound on enqueues in flight, and
// both complete.
func TestFanOutBoundsEnqueuesInFlightAcrossMessages(t *testing.T) {
	const fanOut, subscribers = 5, 40
	var names []string
	for i := range subscribers {
		names = append(names, "c"+strconv.Itoa(i))
	}
	q := &gatedQueues{release: make(chan struct{})}
	h := newHarness(t, func(c *Config) {
		c.Queues, c.FanOut = q, fanOut
		c.Subscribers = fakeSubs{"a|chat": names, "a|news": names}
	})
	var wg sync.WaitGroup
	for _, env := range []*envelope.Envelope{broadcast("m1", "a", "chat"), broadcast("m2", "a", "news")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.router.Handle(context.Background(), bus.NewMessage(bus.QueueConnectors, env, nil, 1, time.Now().Add(time.Minute), nil))
		}()
	}
	require.Eventually(t, func() bool { n, _, _ := q.snapshot(); return n == fanOut }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // room for a bound that does not hold
	for range 2 * subscribers {
		q.release <- struct{}{}
	}
	wg.Wait()
	_, top, done := q.snapshot()
	assert.Equal(t, fanOut, top, "enqueues in flight never exceed FanOut")
	assert.Equal(t, 2*subscribers, done)
	assert.Equal(t, "complete", h.bus.settled["m1"].op)
	assert.Equal(t, "complete", h.bus.settled["m2"].op)
}

// A received message is locked for a short while, so one whose receiver
// cannot settle it (a gateway killed while routing it, a receive whose
// answer was lost in a storage outage) is routed by another receive within
// DefaultLock, not minutes later; a route that takes longer than the lock
// keeps it by renewing, so it is not routed twice meanwhile.
func TestLockIsShortAndRenewedWhileRouting(t *testing.T) {
	t.Run("default lock", func(t *testing.T) {
		h := newHarness(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- h.router.Run(ctx) }()
		require.Eventually(t, func() bool {
			h.bus.mu.Lock()
			defer h.bus.mu.Unlock()
			return h.bus.receives > 0
		}, 5*time.Second, time.Millisecond)
		cancel()
		require.NoError(t, <-done)
		h.bus.mu.Lock()
		defer h.bus.mu.Unlock()
		assert.Equal(t, DefaultLock, h.bus.locks[0])
		assert.LessOrEqual(t, DefaultLock, 30*time.Second, "a message held by a dead receiver waits at most this long")
	})
	t.Run("renewed while routing", func(t *testing.T) {
		gate := &gatedQueues{release: make(chan struct{})}
		h := newHarness(t, func(c *Config) { c.Queues, c.Lock = gate, 2*time.Second })
		go func() {
			time.Sleep(2500 * time.Millisecond) // longer than the lock
			close(gate.release)
		}()
		assert.Equal(t, "complete", h.handle(targeted("slow", "a", "a1"), 1).op)
		h.bus.mu.Lock()
		defer h.bus.mu.Unlock()
		assert.NotEmpty(t, h.bus.renewals["slow"], "renewed every half lock (1s) while routing")
	})
}
