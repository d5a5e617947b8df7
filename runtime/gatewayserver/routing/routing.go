// Package routing moves cloud→connector messages from the bus queue
// "bote-connectors" into the connectors' own Storage Queues.
//
// A targeted message (tenant + connector) goes to that connector's queue; a
// broadcast (tenant + topic) goes to the queue of every connector of that
// tenant subscribed to the topic, found with one partition query, and to
// nobody else. After enqueueing, the connector is nudged (on this replica or
// another, see package nudge); nudges are coalesced and never hold up
// routing.
//
// Failures: each enqueue is retried at once a few times (ImmediateRetries);
// if the message still cannot be routed it is abandoned with a growing delay
// (DelayedRetries, Delay × delivery count) and, after the last delayed
// retry, dead-lettered with the reason. Messages that can never be routed
// (wrong kind, unknown connector, body too large even for a claim check) are
// dead-lettered at once. Undecodable messages never get here: the bus driver
// dead-letters them.
//
// Identity: the gateway does not take the bus's word for who sent a
// message. Anything with send rights on "bote-connectors" can put any bytes
// there, so before routing, the router re-derives the sender: From must be
// a cloud service (never a connector's tenant/connector pair, which only
// the gateway stamps and only on "bote-cloud"), one of Config.Services when
// that allow-list is set, signed with its key (envelope.Envelope.Sign)
// when Config.ServiceKeys is set, and no header may use a reserved name
// (envelope.CheckConnectorHeaders). Anything else goes to the error queue
// with ReasonUnverifiedSender or ReasonReservedHeader and reaches no
// connector.
//
// Deduplication: a message id already routed to a connector is not routed to
// it again while it is remembered (DedupWindow), so a redelivered message —
// a broadcast that failed half way, a cloud service that sent twice — does
// not reach a connector twice through this replica. Delivery stays at least
// once; connectors deduplicate by the same stable id.
package routing

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/gatewayserver/metrics"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/seen"
)

// Bus is what the router needs of the bus driver.
type Bus interface {
	Receive(ctx context.Context, queue string, max int, lock time.Duration) ([]*bus.Message, error)
	RenewLock(ctx context.Context, m *bus.Message, lock time.Duration) error
	Complete(ctx context.Context, m *bus.Message) error
	Abandon(ctx context.Context, m *bus.Message, delay time.Duration) error
	DeadLetter(ctx context.Context, m *bus.Message, reason, description string) error
}

// Queues puts encoded envelopes on connector queues.
type Queues interface {
	Enqueue(ctx context.Context, id ids.ConnectorID, text string) error
}

// Subscribers lists a topic's subscribers in a tenant.
type Subscribers interface {
	Subscribers(ctx context.Context, tenant, topic string) ([]string, error)
}

// Nudger tells a connector's session that it has messages.
type Nudger interface {
	Nudge(ctx context.Context, id ids.ConnectorID) error
}

// Claims stores bodies too large for a queue message and signs their URLs.
type Claims interface {
	Put(ctx context.Context, body []byte, contentType string) (*envelope.Claim, error)
	Sign(ctx context.Context, c *envelope.Claim, ttl time.Duration) error
}

// Directory knows which connectors exist. Optional: without it every valid
// id is routed (its queue is created on first use).
type Directory interface {
	Known(id ids.ConnectorID) bool
}

// Dead-letter reasons.
const (
	ReasonUnroutable       = "unroutable"
	ReasonUnknownConnector = "unknown-connector"
	ReasonTooLarge         = "too-large"
	ReasonRetriesExhausted = "retries-exhausted"
	ReasonUnverifiedSender = "unverified-sender"
	ReasonReservedHeader   = "reserved-header"
	ReasonExpired          = envelope.ReasonExpired
)

// Fan-out bounds (Config.FanOut).
//
// An Azure Storage account (standard, general-purpose v2) targets 20,000
// requests per second in total, and one queue 2,000 messages per second
// (https://learn.microsoft.com/azure/storage/queues/scalability-targets);
// beyond them Storage answers 503 Server Busy. A broadcast enqueues one
// message on each subscriber's queue, so it meets the account target, not
// the per-queue one. An enqueue takes ~5-10 ms within a region, so
// DefaultFanOut enqueues in flight make at most 6,400-12,800 requests per
// second: a 1,000-subscriber broadcast is on its queues in ~0.1-0.2 s and
// about half the account's target stays free for sessions, presence,
// nudges and the connectors' own reads. Raise it on a dedicated account
// (MaxFanOut in flight at 5 ms would already be 100,000 requests per
// second, five times the target); lower it when several routing replicas
// share one account, since the bound is per replica.
const (
	DefaultFanOut = 64
	MaxFanOut     = 512
)

// DefaultIdleMax is the longest wait between receives of an idle router
// on a polling bus. Work is picked up at once through Wake (the gateway's
// WakePath, called by whoever queued it), so the poll is a safety net for
// a lost wake: 5 s, 720 requests an hour per idle routing replica.
const DefaultIdleMax = 5 * time.Second

// DefaultLock is the bus lock of a received message, renewed every half
// lock while the message is routed. It bounds how long a message waits
// when its receiver cannot settle it: a gateway replica that dies holding
// it, or a receive whose answer was lost (a connection reset after the
// service carried the read out) leaves the message invisible until the
// lock ends; then another receive gets it. Routing takes milliseconds, so
// renewal is rare. (On Service Bus the queue's LockDuration applies.)
const DefaultLock = 30 * time.Second

// Config configures a Router.
type Config struct {
	Bus         Bus
	Queues      Queues
	Subscribers Subscribers
	Nudger      Nudger // optional
	// Deliverer, optional, hands a message to a session of its connector
	// on this replica (see Deliverer); Queues must then be HiddenQueues.
	Deliverer Deliverer
	Claims    Claims    // optional: without it, bodies over the limit are dead-lettered
	Directory Directory // optional
	// Services, if set, are the only cloud service names accepted in From;
	// a message from any other is dead-lettered (ReasonUnverifiedSender).
	// Empty accepts every well-formed service name: the send right on the
	// bus queue is then the only trust anchor (see docs/messaging.md).
	Services []string
	// ServiceKeys, if set, holds the public keys of every cloud service
	// allowed to send (several while a key is rotated); a message must then
	// come from one of them and carry a signature that verifies with one of
	// its keys (envelope.Envelope.VerifySignature), else it is
	// dead-lettered (ReasonUnverifiedSender). This proves the sender, where
	// Services only names it.
	ServiceKeys map[string][]*ecdsa.PublicKey
	Metrics     *metrics.Metrics
	Logger      *slog.Logger

	// Queue is the bus queue to route from (default bus.QueueConnectors).
	Queue string
	// Concurrency is how many messages are routed at once (default 16).
	Concurrency int
	// FanOut bounds the connector-queue enqueues in flight across all
	// messages this router is routing (default DefaultFanOut, at most
	// MaxFanOut). A broadcast to many subscribers runs up to FanOut
	// enqueues at once; see DefaultFanOut for how it is sized.
	FanOut int
	// Lock is the bus lock per received message (default DefaultLock),
	// renewed every Lock/2 while the message is routed.
	Lock time.Duration
	// ImmediateRetries per enqueue (default 3); -1 disables.
	ImmediateRetries int
	// DelayedRetries before the error queue (default 3); -1 disables.
	DelayedRetries int
	// Delay is the first delayed retry's delay; the n-th waits n×Delay
	// (default 10s).
	Delay time.Duration
	// DedupWindow is how long routed ids are remembered (default 10m).
	DedupWindow time.Duration
	// ClaimURLTTL is the validity of claim URLs handed to connectors
	// (default 6 days: a connector may be offline that long, and user
	// delegation SAS cannot exceed 7 days).
	ClaimURLTTL time.Duration
	// Idle is the wait after an empty receive, doubling up to IdleMax
	// (defaults 20ms and 1s).
	Idle, IdleMax time.Duration
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Bus == nil:
		return errors.New("routing config: Bus is required")
	case c.Queues == nil:
		return errors.New("routing config: Queues is required")
	case c.Subscribers == nil:
		return errors.New("routing config: Subscribers is required")
	case c.Concurrency < 0:
		return fmt.Errorf("routing config: Concurrency %d is negative", c.Concurrency)
	case c.FanOut < 0 || c.FanOut > MaxFanOut:
		return fmt.Errorf("routing config: FanOut %d must be between 0 (default %d) and %d", c.FanOut, DefaultFanOut, MaxFanOut)
	case c.ImmediateRetries < -1 || c.DelayedRetries < -1:
		return errors.New("routing config: ImmediateRetries and DelayedRetries must be -1, 0 or positive")
	case c.Lock > 0 && c.Lock < 2*time.Second:
		return fmt.Errorf("routing config: Lock %s is under 2s (it is renewed every half lock)", c.Lock)
	case c.Lock < 0, c.Delay < 0, c.DedupWindow < 0, c.ClaimURLTTL < 0, c.Idle < 0, c.IdleMax < 0:
		return errors.New("routing config: Lock, Delay, DedupWindow, ClaimURLTTL, Idle and IdleMax must not be negative")
	case c.Deliverer != nil && !isHidden(c.Queues):
		return errors.New("routing config: Deliverer needs Queues that implement HiddenQueues")
	case c.Idle > 0 && c.IdleMax > 0 && c.Idle > c.IdleMax:
		return fmt.Errorf("routing config: Idle %s exceeds IdleMax %s", c.Idle, c.IdleMax)
	}
	for _, s := range c.Services {
		if err := (envelope.Identity{Service: s}).Validate(); err != nil {
			return fmt.Errorf("routing config: Services: %w", err)
		}
	}
	for s, keys := range c.ServiceKeys {
		if err := (envelope.Identity{Service: s}).Validate(); err != nil {
			return fmt.Errorf("routing config: ServiceKeys: %w", err)
		}
		if len(keys) == 0 || slices.Contains(keys, nil) {
			return fmt.Errorf("routing config: ServiceKeys: %q has a missing key", s)
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.Queue == "" {
		c.Queue = bus.QueueConnectors
	}
	setDefault(&c.Concurrency, 16)
	setDefault(&c.FanOut, DefaultFanOut)
	setDefault(&c.Lock, DefaultLock)
	setDefault(&c.ImmediateRetries, 3)
	setDefault(&c.DelayedRetries, 3)
	setDefault(&c.Delay, 10*time.Second)
	setDefault(&c.DedupWindow, 10*time.Minute)
	setDefault(&c.ClaimURLTTL, 6*24*time.Hour)
	setDefault(&c.Idle, 20*time.Millisecond)
	setDefault(&c.IdleMax, DefaultIdleMax)
	c.ImmediateRetries = max(c.ImmediateRetries, 0)
	c.DelayedRetries = max(c.DelayedRetries, 0)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New(nil)
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Router routes messages until its context ends.
type Router struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics.Metrics
	seen   *seen.Set
	nudges *coalescer
	fanOut chan struct{}                                    // one slot per enqueue in flight (Config.FanOut)
	sleep  func(ctx context.Context, d time.Duration) error // immediate-retry backoff; tests shorten it
	// services is Config.Services as a set; nil accepts every service.
	services map[string]bool
	wake     chan struct{} // Wake: receive now instead of at the next poll
	woken    time.Time     // when the last wake was honoured, zero once it brought work (Run's goroutine only)
}

// Wake makes an idle Run receive now rather than at its next poll: whoever
// put work on the bus queue calls it (through the gateway's WakePath), so
// the poll is only a safety net. Wakes coalesce, and those that find
// nothing are honoured at most once per Config.Idle, so wakes never cost
// more storage requests than polling at Idle would.
func (r *Router) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// idleWait waits d, or less when woken. Wakes whose receive found
// nothing are spaced at least Config.Idle apart, so a flood of wakes
// costs no more than polling at Idle would, while wakes that bring work
// are honoured at once.
func (r *Router) idleWait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.wake:
		_ = retry.Sleep(ctx, r.cfg.Idle-time.Since(r.woken))
		r.woken = time.Now()
	}
}

// New returns a Router.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	r := &Router{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, seen: seen.New(100_000, cfg.DedupWindow), fanOut: make(chan struct{}, cfg.FanOut), sleep: retry.Sleep, wake: make(chan struct{}, 1)}
	for _, s := range cfg.Services {
		if r.services == nil {
			r.services = map[string]bool{}
		}
		r.services[s] = true
	}
	if cfg.Nudger != nil {
		r.nudges = newCoalescer(cfg.Nudger, cfg.Logger)
	}
	return r, nil
}

// Run receives and routes until ctx ends, then finishes the messages it
// holds and returns. It returns an error only for a broken configuration;
// bus outages are logged and retried.
func (r *Router) Run(ctx context.Context) error {
	work := context.WithoutCancel(ctx) // in-flight routing finishes after ctx ends
	var nudgeDone chan struct{}
	if r.nudges != nil {
		nudgeDone = make(chan struct{})
		nctx, cancel := context.WithCancel(work)
		defer func() { r.nudges.close(); <-nudgeDone; cancel() }()
		go func() { defer close(nudgeDone); r.nudges.run(nctx) }()
	}
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	idle := r.cfg.Idle
	for ctx.Err() == nil {
		asked := max(1, min(r.cfg.Concurrency-len(sem), 32))
		msgs, err := r.cfg.Bus.Receive(ctx, r.cfg.Queue, asked, r.cfg.Lock)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.log.Warn("cannot receive from bus", "queue", r.cfg.Queue, "err", err)
			_ = retry.Sleep(ctx, r.cfg.IdleMax)
			continue
		}
		if len(msgs) == 0 {
			r.idleWait(ctx, idle)
			idle = min(idle*2, r.cfg.IdleMax)
			continue
		}
		idle = r.cfg.Idle
		r.woken = time.Time{} // a wake that brought work costs nothing extra
		for _, m := range msgs {
			sem <- struct{}{} // a received message is ours: route it even if ctx ends meanwhile
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				r.Handle(work, m)
			}()
		}
		if len(msgs) < asked {
			// A short receive found the queue empty: wait for a wake or the
			// first poll rather than reading it again at once, which would
			// cost an empty receive per message sent one at a time.
			r.idleWait(ctx, idle)
			idle = min(idle*2, r.cfg.IdleMax)
		}
	}
	return nil
}

// Handle routes one received message, renewing its lock meanwhile, and
// settles it.
func (r *Router) Handle(ctx context.Context, m *bus.Message) {
	start := time.Now()
	env := m.Envelope
	log := r.log.With("message", env.ID, "kind", env.Kind, "tenant", env.Tenant, "delivery", m.DeliveryCount)
	stop, renewed := make(chan struct{}), make(chan struct{})
	go func() { defer close(renewed); r.keepLocked(ctx, m, stop, log) }()
	err := r.route(ctx, env, log)
	close(stop)
	<-renewed // a renewal in flight ends before the message is settled
	var perm *retry.PermanentError
	switch {
	case err == nil:
		r.m.RoutingLatency.Observe(time.Since(start).Seconds())
		r.settle(ctx, log, "complete", r.cfg.Bus.Complete(ctx, m))
	case errors.Is(err, envelope.ErrExpired) && env.IsReply():
		// Nobody waits for it any more: discarded, counted, not an error.
		r.m.LateReplies.Inc()
		log.Info("late reply discarded", "err", err)
		r.settle(ctx, log, "complete", r.cfg.Bus.Complete(ctx, m))
	case errors.As(err, &perm):
		if perm.Reason == ReasonUnverifiedSender || perm.Reason == ReasonReservedHeader {
			// Only something bypassing botecloud.Client can send this: audited
			// like a connector's identity headers (gatewayserver/session).
			var from string
			if env.From != nil {
				from = env.From.String()
			}
			log.Warn("audit: forged_envelope_refused", "audit", true, "event", "forged_envelope_refused",
				"reason", perm.Reason, "from", from, "connector", env.Connector, "topic", env.Topic, "err", perm.Err)
		}
		r.deadLetter(ctx, log, m, perm.Reason, perm.Error())
	case m.DeliveryCount <= r.cfg.DelayedRetries:
		delay := time.Duration(m.DeliveryCount) * r.cfg.Delay
		r.m.Retries.WithLabelValues("delayed").Inc()
		log.Warn("cannot route; will retry later", "in", delay, "err", err)
		r.settle(ctx, log, "abandon", r.cfg.Bus.Abandon(ctx, m, delay))
	default:
		r.deadLetter(ctx, log, m, ReasonRetriesExhausted, err.Error())
	}
}

// keepLocked renews m's lock every half lock until stop is closed, each
// renewal bounded by half a lock. A failed renewal is logged: routing goes
// on, and if the lock was lost the message comes back to a receiver and
// is routed again (a duplicate at most: this replica skips the connectors
// it already reached, and connectors deduplicate by id).
func (r *Router) keepLocked(ctx context.Context, m *bus.Message, stop <-chan struct{}, log *slog.Logger) {
	t := time.NewTicker(r.cfg.Lock / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Lock/2)
		err := r.cfg.Bus.RenewLock(rctx, m, r.cfg.Lock)
		cancel()
		if err != nil {
			log.Warn("cannot renew the lock of a message being routed; it may be routed again", "err", err)
		}
	}
}

func (r *Router) deadLetter(ctx context.Context, log *slog.Logger, m *bus.Message, reason, desc string) {
	r.m.Failed.WithLabelValues(reason).Inc()
	log.Error("moving message to the error queue", "reason", reason, "description", desc)
	r.settle(ctx, log, "dead-letter", r.cfg.Bus.DeadLetter(ctx, m, reason, desc))
}

func (r *Router) settle(_ context.Context, log *slog.Logger, what string, err error) {
	if err != nil {
		// The lock expires and the bus redelivers; dedup keeps connectors
		// from seeing the message twice through this replica.
		log.Warn("cannot settle message", "op", what, "err", err)
	}
}
