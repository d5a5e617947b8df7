// Package storagequeue is the Azure Storage Queue bus driver. It runs the
// whole gateway on Azurite locally and in CI, and on a storage account in
// Azure.
//
// Storage Queues have no locks, dead-letter queue or scheduling of their own;
// the driver builds them from what there is:
//
//   - lock = visibility timeout. Receive dequeues with the lock as
//     visibility timeout; RenewLock and Abandon are UpdateMessage calls that
//     set a new visibility timeout (Abandon with a delay is the delayed
//     retry). Every update returns a new pop receipt; the driver keeps it in
//     the message handle, so a stale receiver gets ErrLockLost.
//   - Complete deletes the message.
//   - DeadLetter writes a record (source queue, reason, description, time,
//     delivery count and the original message text) to the error queue,
//     then deletes the original. The write comes first, so a crash between
//     the two leaves a duplicate, never a loss.
//   - A message dequeued more than MaxDeliveries times is dead-lettered as
//     poison before anyone sees it; a message that is not an envelope is
//     dead-lettered as undecodable. Neither loops.
//   - Send with a delay enqueues with an initial visibility timeout.
//   - An envelope whose encoding exceeds envelope.MaxQueueMessageBytes has
//     its body moved to Blob storage (claimcheck) when a claim store is
//     configured; receivers with a store get the body back transparently.
//
// Messages never expire by default (TTL -1): a connector may be offline for
// days and a silently expired command is worse than a late one.
package storagequeue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
)

// Defaults.
const (
	DefaultMaxDeliveries = 10
	maxBatch             = 32 // Get Messages limit
	maxVisibility        = MaxDelay
)

// Config opens a Driver. Set ConnectionString, or ServiceURL with Credential.
type Config struct {
	// ConnectionString of the storage account (shared key; Azurite).
	ConnectionString string
	// ServiceURL is the queue endpoint (from stack outputs).
	ServiceURL string
	// Credential is an Entra ID credential for ServiceURL.
	Credential azcore.TokenCredential
	// ErrorQueue receives dead letters; bus.QueueErrors if empty.
	ErrorQueue string
	// MaxDeliveries: a message delivered more often is poison and is
	// dead-lettered on receipt. DefaultMaxDeliveries if zero.
	MaxDeliveries int
	// MessageTTL of sent messages; zero means never expire.
	MessageTTL time.Duration
	// Claims stores bodies that do not fit a queue message and resolves
	// claims on receipt. Without it, such envelopes fail with bus.ErrTooLarge
	// and received claims are handed over unresolved.
	Claims *claimcheck.Store
	// CreateQueues creates a queue on first use (local; in Azure the
	// infrastructure creates queues).
	CreateQueues bool
	// Logger; slog.Default() if nil.
	Logger *slog.Logger
}

// Validate reports the first missing or contradictory field.
func (c Config) Validate() error {
	switch {
	case c.ConnectionString != "" && (c.ServiceURL != "" || c.Credential != nil):
		return errors.New("storagequeue config: ConnectionString and ServiceURL/Credential are exclusive")
	case c.ConnectionString == "" && c.ServiceURL == "":
		return errors.New("storagequeue config: ConnectionString or ServiceURL is required")
	case c.ServiceURL != "" && c.Credential == nil:
		return errors.New("storagequeue config: Credential is required with ServiceURL")
	case c.MaxDeliveries < 0:
		return fmt.Errorf("storagequeue config: MaxDeliveries %d is negative", c.MaxDeliveries)
	case c.MessageTTL < 0:
		return fmt.Errorf("storagequeue config: MessageTTL %s is negative", c.MessageTTL)
	case c.MessageTTL > 0 && c.MessageTTL < time.Second:
		return fmt.Errorf("storagequeue config: MessageTTL %s is under one second", c.MessageTTL)
	}
	return nil
}

// Driver is the Storage Queue bus driver; safe for concurrent use.
type Driver struct {
	svc           *azqueue.ServiceClient
	errorQueue    string
	maxDeliveries int
	ttl           int32
	claims        *claimcheck.Store
	create        bool
	log           *slog.Logger

	mu     sync.Mutex
	queues map[string]*azqueue.QueueClient
	closed bool
}

var _ bus.Driver = (*Driver)(nil)

// New opens a driver. It makes no request until first use.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{
		errorQueue:    cfg.ErrorQueue,
		maxDeliveries: cfg.MaxDeliveries,
		ttl:           -1,
		claims:        cfg.Claims,
		create:        cfg.CreateQueues,
		log:           cfg.Logger,
		queues:        map[string]*azqueue.QueueClient{},
	}
	if d.errorQueue == "" {
		d.errorQueue = bus.QueueErrors
	}
	if d.maxDeliveries == 0 {
		d.maxDeliveries = DefaultMaxDeliveries
	}
	if cfg.MessageTTL > 0 {
		d.ttl = int32(min(cfg.MessageTTL.Seconds(), math.MaxInt32))
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	var err error
	if cfg.ConnectionString != "" {
		d.svc, err = azqueue.NewServiceClientFromConnectionString(cfg.ConnectionString, nil)
	} else {
		d.svc, err = azqueue.NewServiceClient(cfg.ServiceURL, cfg.Credential, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open queue service: %w", err)
	}
	return d, nil
}

// ErrorQueue is the name of the queue dead letters go to.
func (d *Driver) ErrorQueue() string { return d.errorQueue }

// MaxDelay is the longest scheduled delay (bus.SendOptions.Delay) a
// Storage Queue allows: a delayed message is enqueued with a visibility
// timeout, which the service caps at 7 days. Send refuses a longer delay
// with bus.ErrDelayTooLong.
const MaxDelay = 7 * 24 * time.Hour

// seconds rounds up to whole seconds (a delay is never shortened) within
// the service's visibility range.
func seconds(d time.Duration, floor int32) int32 {
	s := int32(min(math.Ceil(d.Seconds()), maxVisibility.Seconds()))
	return max(s, floor)
}

// Send implements bus.Driver.
func (d *Driver) Send(ctx context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error {
	if opts != nil && opts.Delay > MaxDelay {
		return fmt.Errorf("cannot send %q to %q: delay %s is over the Storage Queue limit of %s (the visibility timeout): %w",
			idOf(env), queue, opts.Delay, MaxDelay, bus.ErrDelayTooLong)
	}
	if opts != nil && opts.Delay > 0 && d.ttl > 0 && seconds(opts.Delay, 0) >= d.ttl {
		return fmt.Errorf("cannot send %q to %q: delay %s is not under the queue's MessageTTL %ds: %w",
			idOf(env), queue, opts.Delay, d.ttl, bus.ErrDelayTooLong)
	}
	text, err := d.encode(ctx, env)
	if err != nil {
		return fmt.Errorf("cannot send %q to %q: %w", idOf(env), queue, err)
	}
	var q *azqueue.QueueClient
	if opts != nil && opts.MustExist {
		q, err = d.existing(queue)
	} else {
		q, err = d.queue(ctx, queue)
	}
	if err != nil {
		return err
	}
	eo := &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(d.ttl)}
	if opts != nil && opts.Delay > 0 {
		eo.VisibilityTimeout = to.Ptr(seconds(opts.Delay, 0))
	}
	if opts != nil && opts.TTL > 0 {
		ttl := int32(min(math.Ceil((opts.Delay + opts.TTL).Seconds()), math.MaxInt32))
		if d.ttl > 0 {
			ttl = min(ttl, d.ttl)
		}
		eo.TimeToLive = to.Ptr(ttl)
	}
	if _, err := q.EnqueueMessage(ctx, text, eo); err != nil {
		if queueerror.HasCode(err, queueerror.QueueNotFound) && opts != nil && opts.MustExist {
			err = bus.ErrNoQueue
		}
		return fmt.Errorf("cannot send %q to %q: %w", env.ID, queue, err)
	}
	return nil
}

func idOf(env *envelope.Envelope) string {
	if env == nil {
		return ""
	}
	return env.ID
}

// encode returns the queue text of env, claim-checking the body if needed.
func (d *Driver) encode(ctx context.Context, env *envelope.Envelope) (string, error) {
	enc, err := bus.Encode(ctx, env, envelope.MaxQueueMessageBytes, d.claims)
	return string(enc), err
}

// handle is the driver's settlement state for one received message.
type handle struct {
	d     *Driver
	q     *azqueue.QueueClient
	queue string
	id    string
	text  string // UpdateMessage must resend the text

	mu      sync.Mutex // serialises settlement: each update changes pop
	pop     string
	settled bool
}

// Receive implements bus.Driver.
func (d *Driver) Receive(ctx context.Context, queue string, max int, lock time.Duration) ([]*bus.Message, error) {
	return d.receive(ctx, queue, max, lock, false)
}

func (d *Driver) receive(ctx context.Context, queue string, n int, lock time.Duration, deadLetters bool) ([]*bus.Message, error) {
	if n < 1 || lock <= 0 {
		return nil, fmt.Errorf("cannot receive from %q: max %d and lock %s must be positive", queue, n, lock)
	}
	from := queue
	if deadLetters {
		from = d.errorQueue
	}
	q, err := d.queue(ctx, from)
	if err != nil {
		return nil, err
	}
	resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
		NumberOfMessages:  to.Ptr(int32(min(n, maxBatch))),
		VisibilityTimeout: to.Ptr(seconds(lock, 1)),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot receive from %q: %w", from, err)
	}
	out := make([]*bus.Message, 0, len(resp.Messages))
	for _, dm := range resp.Messages {
		if dm == nil || dm.MessageID == nil || dm.PopReceipt == nil {
			continue
		}
		text := deref(dm.MessageText)
		h := &handle{d: d, q: q, queue: from, id: *dm.MessageID, pop: *dm.PopReceipt, text: text}
		count := int(deref(dm.DequeueCount))
		m := bus.NewMessage(from, nil, []byte(text), count, deref(dm.TimeNextVisible), h)
		m.EnqueuedAt = deref(dm.InsertionTime)
		if deadLetters {
			if d.acceptDeadLetter(ctx, m, queue) {
				out = append(out, m)
			}
			continue
		}
		ok, err := bus.Accept(ctx, d, m, d.maxDeliveries, d.claims, d.log)
		if err != nil {
			// Transient: the lock expires and the message comes back.
			d.log.WarnContext(ctx, "message will be redelivered", "queue", from, "err", err)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

func (d *Driver) handleOf(m *bus.Message) (*handle, error) {
	if m == nil {
		return nil, errors.New("message is nil")
	}
	h, ok := m.Handle().(*handle)
	if !ok || h.d != d {
		return nil, bus.ErrForeignMessage
	}
	return h, nil
}

// settle runs op with the handle locked, mapping a stale pop receipt to
// bus.ErrLockLost.
func (d *Driver) settle(m *bus.Message, what string, op func(h *handle) error) error {
	h, err := d.handleOf(m)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.settled {
		return fmt.Errorf("cannot %s message %s in %q: %w (already settled)", what, h.id, h.queue, bus.ErrLockLost)
	}
	if err := op(h); err != nil {
		if queueerror.HasCode(err, queueerror.MessageNotFound, queueerror.PopReceiptMismatch) {
			return fmt.Errorf("cannot %s message %s in %q: %w", what, h.id, h.queue, bus.ErrLockLost)
		}
		return fmt.Errorf("cannot %s message %s in %q: %w", what, h.id, h.queue, err)
	}
	return nil
}

// Complete implements bus.Driver.
func (d *Driver) Complete(ctx context.Context, m *bus.Message) error {
	return d.settle(m, "complete", func(h *handle) error {
		if _, err := h.q.DeleteMessage(ctx, h.id, h.pop, nil); err != nil {
			return err
		}
		h.settled = true
		return nil
	})
}

// Abandon implements bus.Driver.
func (d *Driver) Abandon(ctx context.Context, m *bus.Message, delay time.Duration) error {
	return d.settle(m, "abandon", func(h *handle) error {
		if _, err := h.q.UpdateMessage(ctx, h.id, h.pop, h.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(seconds(delay, 0))}); err != nil {
			return err
		}
		h.settled = true
		return nil
	})
}

// RenewLock implements bus.Driver.
func (d *Driver) RenewLock(ctx context.Context, m *bus.Message, lock time.Duration) error {
	return d.settle(m, "renew lock of", func(h *handle) error {
		resp, err := h.q.UpdateMessage(ctx, h.id, h.pop, h.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(seconds(lock, 1))})
		if err != nil {
			return err
		}
		h.pop = deref(resp.PopReceipt)
		m.SetHandle(h, deref(resp.TimeNextVisible))
		return nil
	})
}

// record is a dead letter as stored in the error queue.
type record struct {
	V             int       `json:"v"`
	SourceQueue   string    `json:"sourceQueue"`
	Reason        string    `json:"reason"`
	Description   string    `json:"description,omitempty"`
	At            time.Time `json:"at"`
	DeliveryCount int       `json:"deliveryCount"`
	// Message is the original message text; RawClaim holds it instead when
	// the record would not fit a queue message.
	Message   string          `json:"message,omitempty"`
	RawClaim  *envelope.Claim `json:"rawClaim,omitempty"`
	Truncated bool            `json:"truncated,omitempty"`
}

// DeadLetter implements bus.Driver.
func (d *Driver) DeadLetter(ctx context.Context, m *bus.Message, reason, description string) error {
	if reason == "" {
		return errors.New("cannot dead-letter: reason is empty")
	}
	return d.settle(m, "dead-letter", func(h *handle) error {
		description = bus.Truncate(description, bus.MaxDescription)
		rec := record{V: 1, SourceQueue: h.queue, Reason: reason, Description: description, At: time.Now().UTC(), DeliveryCount: m.DeliveryCount, Message: h.text}
		text, err := d.encodeRecord(ctx, &rec)
		if err != nil {
			return err
		}
		eq, err := d.queue(ctx, d.errorQueue)
		if err != nil {
			return err
		}
		if _, err := eq.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(-1))}); err != nil {
			return fmt.Errorf("cannot write to error queue %q: %w", d.errorQueue, err)
		}
		if _, err := h.q.DeleteMessage(ctx, h.id, h.pop, nil); err != nil {
			return err
		}
		h.settled = true
		return nil
	})
}

func (d *Driver) encodeRecord(ctx context.Context, rec *record) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("cannot encode dead letter: %w", err)
	}
	if len(b) <= envelope.MaxQueueMessageBytes {
		return string(b), nil
	}
	// The original plus escaping does not fit: keep it in a blob, or as
	// much of it as fits when there is no claim store.
	if d.claims != nil {
		c, err := d.claims.Put(ctx, []byte(rec.Message), "text/plain")
		if err == nil {
			rec.Message, rec.RawClaim = "", c
			if b, err = json.Marshal(rec); err != nil {
				return "", fmt.Errorf("cannot encode dead letter: %w", err)
			}
			return string(b), nil
		}
		d.log.ErrorContext(ctx, "cannot store dead letter original; truncating it", "err", err)
	}
	for len(b) > envelope.MaxQueueMessageBytes && rec.Message != "" {
		rec.Message = rec.Message[:len(rec.Message)-min(len(rec.Message), len(b)-envelope.MaxQueueMessageBytes+64)]
		rec.Truncated = true
		if b, err = json.Marshal(rec); err != nil {
			return "", fmt.Errorf("cannot encode dead letter: %w", err)
		}
	}
	return string(b), nil
}

// ReceiveDeadLetters implements bus.Driver. Records from other source
// queues are released again at once.
func (d *Driver) ReceiveDeadLetters(ctx context.Context, queue string, max int, lock time.Duration) ([]*bus.Message, error) {
	return d.receive(ctx, queue, max, lock, true)
}

func (d *Driver) acceptDeadLetter(ctx context.Context, m *bus.Message, want string) bool {
	var rec record
	if err := json.Unmarshal(m.Raw, &rec); err != nil || rec.V != 1 {
		// Not ours: leave it for whoever wrote it; show it to nobody.
		_ = d.Abandon(ctx, m, 0)
		return false
	}
	if rec.SourceQueue != want {
		if err := d.Abandon(ctx, m, 0); err != nil {
			d.log.WarnContext(ctx, "cannot release dead letter of another queue", "queue", rec.SourceQueue, "err", err)
		}
		return false
	}
	raw := []byte(rec.Message)
	if rec.RawClaim != nil && d.claims != nil {
		if b, err := d.claims.Fetch(ctx, rec.RawClaim); err == nil {
			raw = b
		} else {
			d.log.WarnContext(ctx, "cannot fetch dead letter original", "err", err)
		}
	}
	m.Raw = raw
	if env, err := envelope.Decode(raw); err == nil {
		m.Envelope = env
	}
	m.DeadLetter = &bus.DeadLetterInfo{SourceQueue: rec.SourceQueue, Reason: rec.Reason, Description: rec.Description, DeadLetteredAt: rec.At}
	return true
}

// Close implements bus.Driver.
func (d *Driver) Close(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
