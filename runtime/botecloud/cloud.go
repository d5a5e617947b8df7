// Package botecloud is what a cloud service imports to talk to on-premises
// connectors through the gateway (the Go counterpart of the seed's
// EnableBote()).
//
// A Client sends to one connector (SendToConnector) or to every connector
// of a tenant subscribed to a topic (Broadcast) by putting envelopes on the
// "bote-connectors" queue, where the worker routes them. Run receives what
// connectors sent from the "bote-cloud" queue and calls a Handler with a
// Message whose From is the identity the worker stamped from the
// connector's verified token. The client trusts nothing else: the bus
// queues are writable only by the worker and cloud services (Azure RBAC in
// the gateway stack), a message on "bote-cloud" that is not a connector
// message with a valid From is dead-lettered unhandled, and application
// headers can never carry identity (reserved names are refused on send and
// stripped of meaning on receipt). Reply answers a received message: it goes
// to the sending connector with CorrelationID set to the request's ID.
//
// Failure handling follows the service-bus convention (NServiceBus, Rebus):
// a failing handler is retried ImmediateRetries times in place, then the
// message is abandoned with a growing delay (DelayedRetryBase × n) up to
// DelayedRetries times, then dead-lettered to the error queue with the
// reason and the last error. Errors wrapped with Permanent skip the retries.
// Delayed retries are counted by the transport's delivery count, so a
// delivery lost to a crash or an expired lock also uses one up.
//
// Deduplication: delivery is at least once. The client remembers ids of
// messages it handled successfully (a bounded in-memory LRU with TTL,
// DedupSize entries for DedupTTL) and completes a repeat without calling
// the handler; a copy arriving while the first is still being handled is
// put back for later. The memory is per process: a duplicate delivered to
// another replica, or after a restart, or after DedupTTL, is handled again,
// so handlers with external effects still use Message.ID as an idempotency
// key.
//
// Long handlers keep their message locked: the client renews the lock every
// Lock/2 and cancels the handler's context if the lock is lost. Cancelling
// the context passed to Run stops receiving, lets in-flight handlers finish
// (up to DrainTimeout, then their contexts are cancelled) and returns.
package botecloud

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/seen"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Bus is what the client needs from a bus driver (bus.Driver satisfies it).
type Bus interface {
	Send(ctx context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error
	Receive(ctx context.Context, queue string, max int, lock time.Duration) ([]*bus.Message, error)
	Complete(ctx context.Context, m *bus.Message) error
	Abandon(ctx context.Context, m *bus.Message, delay time.Duration) error
	DeadLetter(ctx context.Context, m *bus.Message, reason, description string) error
	RenewLock(ctx context.Context, m *bus.Message, lock time.Duration) error
}

// Config of a Client. Zero values take the documented defaults.
type Config struct {
	// Bus is the driver (required).
	Bus Bus
	// Service names this cloud service; it is stamped as From.Service on
	// everything it sends (required).
	Service string
	// SigningKey, if set, signs everything this service sends (see
	// envelope.Envelope.Sign): a worker that holds the public key for
	// Service then accepts messages in this service's name only when they
	// carry a valid signature. An EC P-256 private key.
	SigningKey *ecdsa.PrivateKey
	// WorkerKeys, if set, are the worker's public keys (several while one
	// is rotated): a message on the cloud queue is handled only when the
	// worker signed it (worker --signing-key), so nothing else holding send
	// rights on that queue can pose as a connector. Without them the send
	// right (only the worker's, by RBAC) is the only anchor.
	WorkerKeys []*ecdsa.PublicKey
	// ConnectorsQueue (default bus.QueueConnectors) and CloudQueue (default
	// bus.QueueCloud).
	ConnectorsQueue, CloudQueue string
	// ImmediateRetries after a failed handler call, in place (default 3;
	// -1 for none).
	ImmediateRetries int
	// DelayedRetries after the immediate ones are used up (default 3; -1
	// for none), DelayedRetryBase × n apart (default 10s).
	DelayedRetries   int
	DelayedRetryBase time.Duration
	// Lock per received message (default 1m), renewed every Lock/2.
	Lock time.Duration
	// Concurrency is how many messages are handled at once (default 8).
	Concurrency int
	// PollMin and PollMax bound the wait between empty receives, which
	// doubles from PollMin up to PollMax (defaults 200ms, 5s).
	PollMin, PollMax time.Duration
	// DedupSize (default 10000) and DedupTTL (default 10m) bound the
	// handled-id memory.
	DedupSize int
	DedupTTL  time.Duration
	// DrainTimeout bounds how long Run waits for in-flight handlers after
	// its context is cancelled (default 30s).
	DrainTimeout time.Duration
	// WakeURL, if set, is the worker's base URL: after each send the client
	// POSTs to its sessionproto.WakePath so a routing replica reads the
	// message now instead of at its next poll of bote-connectors, which is
	// then only a safety net. Best effort: a lost wake costs at most the
	// worker's --route-poll-max. Not needed with Service Bus, whose receive
	// is a long poll.
	WakeURL string
	// WakeClient sends wakes (default: an http.Client with a 5s timeout).
	WakeClient *http.Client
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate reports the first missing or out-of-range field.
func (c Config) Validate() error {
	switch {
	case c.Bus == nil:
		return errors.New("cloud config: Bus is required")
	case c.Service == "":
		return errors.New("cloud config: Service is required")
	case c.WakeURL != "" && !isHTTPURL(c.WakeURL):
		return fmt.Errorf("cloud config: WakeURL %q must be an http or https URL with a host", c.WakeURL)
	case c.ImmediateRetries < -1:
		return fmt.Errorf("cloud config: ImmediateRetries %d is below -1", c.ImmediateRetries)
	case c.DelayedRetries < -1:
		return fmt.Errorf("cloud config: DelayedRetries %d is below -1", c.DelayedRetries)
	case c.DelayedRetryBase < 0:
		return fmt.Errorf("cloud config: DelayedRetryBase %s is negative", c.DelayedRetryBase)
	case c.Lock < 0 || (c.Lock > 0 && c.Lock < time.Second):
		return fmt.Errorf("cloud config: Lock %s must be at least 1s", c.Lock)
	case c.Concurrency < 0:
		return fmt.Errorf("cloud config: Concurrency %d is negative", c.Concurrency)
	case c.PollMin < 0 || c.PollMax < 0 || (c.PollMax > 0 && c.PollMin > c.PollMax):
		return fmt.Errorf("cloud config: PollMin %s and PollMax %s must be positive with PollMin <= PollMax", c.PollMin, c.PollMax)
	case c.DedupSize < 0:
		return fmt.Errorf("cloud config: DedupSize %d is negative", c.DedupSize)
	case c.DedupTTL < 0:
		return fmt.Errorf("cloud config: DedupTTL %s is negative", c.DedupTTL)
	case c.DrainTimeout < 0:
		return fmt.Errorf("cloud config: DrainTimeout %s is negative", c.DrainTimeout)
	case c.SigningKey != nil && c.SigningKey.Curve != elliptic.P256():
		return errors.New("cloud config: SigningKey must be an EC P-256 key")
	case slices.Contains(c.WorkerKeys, nil):
		return errors.New("cloud config: WorkerKeys holds a nil key")
	}
	return (envelope.Identity{Service: c.Service}).Validate()
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.ConnectorsQueue == "" {
		c.ConnectorsQueue = bus.QueueConnectors
	}
	if c.CloudQueue == "" {
		c.CloudQueue = bus.QueueCloud
	}
	c.ImmediateRetries = retries(c.ImmediateRetries, 3)
	c.DelayedRetries = retries(c.DelayedRetries, 3)
	def(&c.DelayedRetryBase, 10*time.Second)
	def(&c.Lock, time.Minute)
	def(&c.PollMin, 200*time.Millisecond)
	def(&c.PollMax, 5*time.Second)
	def(&c.DedupTTL, 10*time.Minute)
	def(&c.DrainTimeout, 30*time.Second)
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.DedupSize == 0 {
		c.DedupSize = 10000
	}
	if c.WakeClient == nil {
		c.WakeClient = &http.Client{Timeout: 5 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func retries(v, def int) int {
	switch v {
	case 0:
		return def
	case -1:
		return 0
	}
	return v
}

// Client sends to connectors and receives from them. Safe for concurrent use.
type Client struct {
	cfg   Config
	log   *slog.Logger
	seen  *seen.Set
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	inFlight map[string]bool
	running  bool
	// waking: a wake is being sent; wakeAgain: a send finished meanwhile,
	// so one more wake follows (coalesced).
	waking, wakeAgain bool
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Logger, now: time.Now, sleep: retry.Sleep, inFlight: map[string]bool{}}
	c.seen = seen.New(cfg.DedupSize, cfg.DedupTTL).WithClock(func() time.Time { return c.now() })
	return c, nil
}

// Outgoing is a message to send. ID is generated when empty; setting it
// makes a retried send of the same logical message deduplicable downstream.
type Outgoing struct {
	ID            string
	CorrelationID string
	ReplyTo       string
	Headers       map[string]string
	ContentType   string
	Body          []byte
}

// SendToConnector sends msg to one connector of a tenant and returns the
// message id.
func (c *Client) SendToConnector(ctx context.Context, tenant, connector string, msg Outgoing) (string, error) {
	if err := ids.Validate("tenant", tenant); err != nil {
		return "", fmt.Errorf("cannot send to connector: %w", err)
	}
	if err := ids.Validate("connector", connector); err != nil {
		return "", fmt.Errorf("cannot send to connector: %w", err)
	}
	env := c.envelope(msg)
	env.Kind, env.Tenant, env.Connector = envelope.KindTargeted, tenant, connector
	return c.send(ctx, env)
}

// Broadcast sends msg to every connector of tenant subscribed to topic and
// returns the message id.
func (c *Client) Broadcast(ctx context.Context, tenant, topic string, msg Outgoing) (string, error) {
	if err := ids.Validate("tenant", tenant); err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	if err := envelope.ValidateTopic(topic); err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	env := c.envelope(msg)
	env.Kind, env.Tenant, env.Topic = envelope.KindBroadcast, tenant, topic
	return c.send(ctx, env)
}

// Reply sends msg to the connector that sent req, correlated to it.
func (c *Client) Reply(ctx context.Context, req *Message, msg Outgoing) (string, error) {
	if req == nil || !req.From.IsConnector() {
		return "", errors.New("cannot reply: request has no connector sender")
	}
	msg.CorrelationID = req.ID
	return c.SendToConnector(ctx, req.From.Tenant, req.From.Connector, msg)
}

func (c *Client) envelope(msg Outgoing) *envelope.Envelope {
	id := msg.ID
	if id == "" {
		id = envelope.NewID()
	}
	return &envelope.Envelope{
		ID:            id,
		CorrelationID: msg.CorrelationID,
		ReplyTo:       msg.ReplyTo,
		From:          &envelope.Identity{Service: c.cfg.Service},
		Headers:       maps.Clone(msg.Headers),
		ContentType:   msg.ContentType,
		Body:          msg.Body,
		CreatedAt:     c.now().UTC(),
	}
}

func (c *Client) send(ctx context.Context, env *envelope.Envelope) (string, error) {
	// Same rule as for connectors: identity and routing are never headers.
	if err := envelope.CheckConnectorHeaders(env.Headers); err != nil {
		return "", fmt.Errorf("cannot send %s: %w", env.ID, err)
	}
	if c.cfg.SigningKey != nil {
		if err := env.Sign(c.cfg.SigningKey); err != nil {
			return "", err
		}
	}
	if err := env.Validate(); err != nil {
		return "", fmt.Errorf("cannot send %s: %w", env.ID, err)
	}
	if err := c.cfg.Bus.Send(ctx, c.cfg.ConnectorsQueue, env, nil); err != nil {
		return "", err
	}
	c.wake()
	return env.ID, nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// wake tells the worker that bote-connectors has a message (Config.WakeURL)
// without holding up the send. Wakes coalesce: while one is in flight,
// any number of sends make one more, sent after it, so the last send is
// always followed by a wake that started after it.
func (c *Client) wake() {
	if c.cfg.WakeURL == "" {
		return
	}
	c.mu.Lock()
	if c.waking {
		c.wakeAgain = true
		c.mu.Unlock()
		return
	}
	c.waking = true
	c.mu.Unlock()
	go func() {
		for {
			c.postWake()
			c.mu.Lock()
			if !c.wakeAgain {
				c.waking = false
				c.mu.Unlock()
				return
			}
			c.wakeAgain = false
			c.mu.Unlock()
		}
	}()
}

func (c *Client) postWake() {
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(c.cfg.WakeURL, "/")+sessionproto.WakePath, nil)
	if err != nil {
		c.log.Warn("cannot wake the worker", "err", err)
		return
	}
	resp, err := c.cfg.WakeClient.Do(req)
	if err != nil {
		c.log.Debug("cannot wake the worker; its route poll will find the message", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		c.log.Debug("worker refused the wake; its route poll will find the message", "status", resp.Status)
	}
}

// Message is a received connector message.
type Message struct {
	ID            string
	CorrelationID string
	ReplyTo       string
	// From is the sending connector as verified by the worker.
	From        envelope.Identity
	Headers     map[string]string
	ContentType string
	Body        []byte
	CreatedAt   time.Time
	// DeliveryCount is the transport's count (1 on first delivery);
	// Attempt counts handler calls within this delivery (1 first).
	DeliveryCount, Attempt int
}

// Handler handles one message. Returning nil completes it; an error
// retries it (see the package doc); Permanent(err) dead-letters it at once.
type Handler func(ctx context.Context, m *Message) error

// Permanent marks err as not worth retrying: the message is dead-lettered.
func Permanent(err error) error {
	return retry.Permanent(err)
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	return retry.IsPermanent(err)
}

// ErrRunning is returned by Run when the client is already running.
var ErrRunning = errors.New("cloud client is already running")

// Run receives from the cloud queue and calls h until ctx is cancelled,
// then drains in-flight handlers and returns nil.
func (c *Client) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("cannot run: handler is nil")
	}
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	// Handlers outlive ctx by up to DrainTimeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	slots := make(chan struct{}, c.cfg.Concurrency)
	var wg sync.WaitGroup
	wait := c.cfg.PollMin
	for ctx.Err() == nil {
		free := cap(slots) - len(slots)
		if free == 0 {
			// Wait for a slot before asking for more.
			select {
			case slots <- struct{}{}:
				<-slots
			case <-ctx.Done():
			}
			continue
		}
		ms, err := c.cfg.Bus.Receive(ctx, c.cfg.CloudQueue, free, c.cfg.Lock)
		if err != nil {
			if ctx.Err() == nil {
				c.log.WarnContext(ctx, "cannot receive; backing off", "queue", c.cfg.CloudQueue, "err", err, "wait", wait)
			}
		}
		if len(ms) == 0 {
			_ = c.sleep(ctx, wait)
			wait = min(wait*2, c.cfg.PollMax)
			continue
		}
		wait = c.cfg.PollMin
		for _, m := range ms {
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				c.process(work, m, h)
			}()
		}
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("drain timeout; cancelling in-flight handlers", "timeout", c.cfg.DrainTimeout)
		cancelWork()
		<-drained
	}
	return nil
}

// settleTimeout bounds one settlement call.
const settleTimeout = 30 * time.Second

func (c *Client) settle(ctx context.Context, what string, m *bus.Message, op func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := op(ctx); err != nil {
		// The message comes back after its lock expires; dedup catches it
		// if it was handled.
		c.log.WarnContext(ctx, "cannot "+what+" message", "id", idOf(m), "err", err)
	}
}

func idOf(m *bus.Message) string {
	if m.Envelope == nil {
		return ""
	}
	return m.Envelope.ID
}

// process handles one received message end to end.
func (c *Client) process(ctx context.Context, m *bus.Message, h Handler) {
	env := m.Envelope
	if env == nil || env.Kind != envelope.KindCloud || env.From == nil || !env.From.IsConnector() {
		c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
			return c.cfg.Bus.DeadLetter(ctx, m, "unverified sender", "a message on the cloud queue must be a connector message stamped by the worker")
		})
		return
	}
	if err := c.verifyWorker(env); err != nil {
		c.log.WarnContext(ctx, "audit: forged_envelope_refused", "audit", true, "event", "forged_envelope_refused",
			"id", env.ID, "from", env.From.String(), "err", err)
		c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
			return c.cfg.Bus.DeadLetter(ctx, m, "unverified sender", err.Error())
		})
		return
	}
	log := c.log.With("id", env.ID, "from", env.From.String(), "delivery", m.DeliveryCount)
	if c.seen.Has(env.ID) {
		log.InfoContext(ctx, "duplicate message completed without handling")
		c.settle(ctx, "complete", m, func(ctx context.Context) error { return c.cfg.Bus.Complete(ctx, m) })
		return
	}
	if !c.claim(env.ID) {
		// Another copy is being handled right now: look again later, when
		// it will be in the dedup memory (or have failed).
		c.settle(ctx, "abandon", m, func(ctx context.Context) error { return c.cfg.Bus.Abandon(ctx, m, c.cfg.Lock/2) })
		return
	}
	defer c.release(env.ID)

	err := c.handle(ctx, m, h, log)
	switch {
	case err == nil:
		c.seen.Add(env.ID)
		c.settle(ctx, "complete", m, func(ctx context.Context) error { return c.cfg.Bus.Complete(ctx, m) })
	case IsPermanent(err):
		log.WarnContext(ctx, "handler failed permanently; dead-lettering", "err", err)
		c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
			return c.cfg.Bus.DeadLetter(ctx, m, "handler failed permanently", err.Error())
		})
	case m.DeliveryCount <= c.cfg.DelayedRetries:
		delay := c.cfg.DelayedRetryBase * time.Duration(m.DeliveryCount)
		log.WarnContext(ctx, "handler failed; delayed retry", "err", err, "delay", delay)
		c.settle(ctx, "abandon", m, func(ctx context.Context) error { return c.cfg.Bus.Abandon(ctx, m, delay) })
	default:
		reason := fmt.Sprintf("handler failed after %d immediate and %d delayed retries", c.cfg.ImmediateRetries, c.cfg.DelayedRetries)
		log.ErrorContext(ctx, reason+"; dead-lettering", "err", err)
		c.settle(ctx, "dead-letter", m, func(ctx context.Context) error { return c.cfg.Bus.DeadLetter(ctx, m, reason, err.Error()) })
	}
}

// verifyWorker checks the worker's signature when WorkerKeys are set.
func (c *Client) verifyWorker(env *envelope.Envelope) error {
	if len(c.cfg.WorkerKeys) == 0 {
		return nil
	}
	var err error
	for _, k := range c.cfg.WorkerKeys {
		if err = env.VerifySignature(k); err == nil {
			return nil
		}
	}
	return fmt.Errorf("not signed by the worker: %w", err)
}

func (c *Client) claim(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight[id] {
		return false
	}
	c.inFlight[id] = true
	return true
}

func (c *Client) release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, id)
}

// handle calls h with immediate retries while renewing the lock.
func (c *Client) handle(ctx context.Context, m *bus.Message, h Handler, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renew(ctx, m, stop, cancel, log)
	}()
	defer func() { close(stop); <-renewed }()

	env := m.Envelope
	var err error
	for attempt := 1; attempt <= 1+c.cfg.ImmediateRetries; attempt++ {
		msg := &Message{
			ID: env.ID, CorrelationID: env.CorrelationID, ReplyTo: env.ReplyTo,
			From: *env.From, Headers: maps.Clone(env.Headers), ContentType: env.ContentType,
			Body: env.Body, CreatedAt: env.CreatedAt, DeliveryCount: m.DeliveryCount, Attempt: attempt,
		}
		err = callHandler(ctx, h, msg)
		if err == nil || IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		log.DebugContext(ctx, "handler failed; immediate retry", "attempt", attempt, "err", err)
	}
	return err
}

// callHandler turns a handler panic into an error so one bad message cannot
// take the service down.
func callHandler(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, m)
}

// renew extends the lock every Lock/2 until stop; a lost lock cancels the
// handler.
func (c *Client) renew(ctx context.Context, m *bus.Message, stop <-chan struct{}, cancel context.CancelFunc, log *slog.Logger) {
	t := time.NewTicker(c.cfg.Lock / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			err := c.cfg.Bus.RenewLock(ctx, m, c.cfg.Lock)
			if errors.Is(err, bus.ErrLockLost) {
				log.WarnContext(ctx, "lock lost during handling; cancelling handler", "err", err)
				cancel()
				return
			}
			if err != nil {
				log.WarnContext(ctx, "cannot renew lock", "err", err)
			}
		}
	}
}
