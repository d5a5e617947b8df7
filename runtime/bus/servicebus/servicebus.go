// Package servicebus is the Azure Service Bus bus driver, used in Azure.
//
// It maps the bus contract onto Service Bus peek-lock queues:
//
//   - Receive is a peek-lock receive; the lock duration is the queue's
//     LockDuration (set by the gateway stack; at most 5 minutes), so the lock
//     argument of Receive and RenewLock is ignored. RenewLock is
//     RenewMessageLock, Complete is CompleteMessage, Abandon without delay is
//     AbandonMessage.
//   - DeadLetter is DeadLetterMessage with reason and description: the
//     message goes to the queue's own dead-letter sub-queue, which
//     ReceiveDeadLetters reads. Undecodable and poison messages (delivered
//     more than MaxDeliveries times) are dead-lettered the same way on
//     receipt; the queue's MaxDeliveryCount should be above MaxDeliveries so
//     that ours, which keeps the reason, fires first.
//   - Duplicate safe: the Service Bus MessageId is the envelope ID, so
//     duplicate detection (when enabled on the queue) drops a re-sent
//     message, and handlers deduplicate on the same id.
//   - Abandon with a delay (delayed retry) schedules a copy for the retry
//     time and then completes the original. The copy's MessageId is the
//     envelope ID plus the retry number, so duplicate detection does not
//     drop it, and it carries the deliveries so far, so DeliveryCount keeps
//     growing across retries. A crash between the two steps leaves a
//     duplicate (same envelope ID), never a loss.
//   - An envelope over MaxMessageBytes (default 256 KiB less headroom, the
//     Standard tier limit) goes by claim check when a store is configured.
//
// It cannot be exercised without a Service Bus namespace; the contract
// suite runs against one when BOTE_TEST_SERVICEBUS_CONNECTION_STRING is set
// (see integration/bus).
package servicebus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
)

// Defaults.
const (
	DefaultMaxDeliveries   = 10
	DefaultReceiveWait     = time.Second
	DefaultMaxMessageBytes = 256*1024 - 8*1024 // Standard tier, less AMQP header headroom

	// propPriorDeliveries carries the deliveries before a delayed retry.
	propPriorDeliveries = "bote-prior-deliveries"
	maxMessageIDLength  = 128
)

// Config opens a Driver. Set ConnectionString, or Namespace with Credential.
type Config struct {
	// ConnectionString of the namespace (shared access key).
	ConnectionString string
	// Namespace is the fully qualified namespace (from stack outputs), for
	// example "bote.servicebus.usgovcloudapi.net".
	Namespace string
	// Credential is an Entra ID credential for Namespace.
	Credential azcore.TokenCredential
	// MaxDeliveries: a message delivered more often is dead-lettered as
	// poison on receipt. DefaultMaxDeliveries if zero.
	MaxDeliveries int
	// ReceiveWait bounds how long Receive waits for a first message.
	// DefaultReceiveWait if zero.
	ReceiveWait time.Duration
	// MaxMessageBytes of an encoded envelope before the body goes by claim
	// check. DefaultMaxMessageBytes if zero (raise it on Premium).
	MaxMessageBytes int
	// Claims stores large bodies; see storagequeue.Config.Claims.
	Claims *claimcheck.Store
	// Logger; slog.Default() if nil.
	Logger *slog.Logger
}

// Validate reports the first missing or contradictory field.
func (c Config) Validate() error {
	switch {
	case c.ConnectionString != "" && (c.Namespace != "" || c.Credential != nil):
		return errors.New("servicebus config: ConnectionString and Namespace/Credential are exclusive")
	case c.ConnectionString == "" && c.Namespace == "":
		return errors.New("servicebus config: ConnectionString or Namespace is required")
	case c.Namespace != "" && c.Credential == nil:
		return errors.New("servicebus config: Credential is required with Namespace")
	case c.MaxDeliveries < 0:
		return fmt.Errorf("servicebus config: MaxDeliveries %d is negative", c.MaxDeliveries)
	case c.ReceiveWait < 0:
		return fmt.Errorf("servicebus config: ReceiveWait %s is negative", c.ReceiveWait)
	case c.MaxMessageBytes < 0 || (c.MaxMessageBytes > 0 && c.MaxMessageBytes < 4096):
		return fmt.Errorf("servicebus config: MaxMessageBytes %d must be at least 4096", c.MaxMessageBytes)
	}
	return nil
}

// Driver is the Service Bus bus driver; safe for concurrent use.
type Driver struct {
	client        *azservicebus.Client
	maxDeliveries int
	wait          time.Duration
	maxBytes      int
	claims        *claimcheck.Store
	log           *slog.Logger

	mu        sync.Mutex
	senders   map[string]*azservicebus.Sender
	receivers map[receiverKey]*receiver
	closed    bool
}

type receiverKey struct {
	queue      string
	deadLetter bool
}

// receiver serialises ReceiveMessages on one link; settlement may run
// concurrently.
type receiver struct {
	mu sync.Mutex
	r  *azservicebus.Receiver
}

var _ bus.Driver = (*Driver)(nil)

// New opens a driver; links are opened on first use.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{
		maxDeliveries: cfg.MaxDeliveries,
		wait:          cfg.ReceiveWait,
		maxBytes:      cfg.MaxMessageBytes,
		claims:        cfg.Claims,
		log:           cfg.Logger,
		senders:       map[string]*azservicebus.Sender{},
		receivers:     map[receiverKey]*receiver{},
	}
	if d.maxDeliveries == 0 {
		d.maxDeliveries = DefaultMaxDeliveries
	}
	if d.wait == 0 {
		d.wait = DefaultReceiveWait
	}
	if d.maxBytes == 0 {
		d.maxBytes = DefaultMaxMessageBytes
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	var err error
	if cfg.ConnectionString != "" {
		d.client, err = azservicebus.NewClientFromConnectionString(cfg.ConnectionString, nil)
	} else {
		d.client, err = azservicebus.NewClient(cfg.Namespace, cfg.Credential, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open service bus client: %w", err)
	}
	return d, nil
}

func (d *Driver) sender(queue string) (*azservicebus.Sender, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, bus.ErrClosed
	}
	if s, ok := d.senders[queue]; ok {
		return s, nil
	}
	s, err := d.client.NewSender(queue, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot open sender for %q: %w", queue, err)
	}
	d.senders[queue] = s
	return s, nil
}

func (d *Driver) receiver(queue string, deadLetter bool) (*receiver, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, bus.ErrClosed
	}
	k := receiverKey{queue, deadLetter}
	if r, ok := d.receivers[k]; ok {
		return r, nil
	}
	opts := &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock}
	if deadLetter {
		opts.SubQueue = azservicebus.SubQueueDeadLetter
	}
	r, err := d.client.NewReceiverForQueue(queue, opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open receiver for %q: %w", queue, err)
	}
	d.receivers[k] = &receiver{r: r}
	return d.receivers[k], nil
}

// toMessage builds the Service Bus message for an encoded envelope.
// Routing fields are copied to application properties for operators and
// subscription filters; receivers read only the body.
func toMessage(env *envelope.Envelope, body []byte) *azservicebus.Message {
	props := map[string]any{envelope.HeaderKind: string(env.Kind)}
	for k, v := range map[string]string{
		envelope.HeaderTenant: env.Tenant, envelope.HeaderConnector: env.Connector, envelope.HeaderTopic: env.Topic,
	} {
		if v != "" {
			props[k] = v
		}
	}
	if env.From != nil {
		props[envelope.HeaderFrom] = env.From.String()
	}
	m := &azservicebus.Message{
		MessageID:             to.Ptr(env.ID),
		ContentType:           to.Ptr(envelope.ContentType),
		Body:                  body,
		ApplicationProperties: props,
	}
	if env.CorrelationID != "" {
		m.CorrelationID = to.Ptr(env.CorrelationID)
	}
	return m
}

// retryMessageID is the MessageId of the copy scheduled for a delayed
// retry: distinct per retry so duplicate detection keeps it.
func retryMessageID(id string, deliveries int) string {
	r := id + "/retry-" + strconv.Itoa(deliveries)
	if len(r) <= maxMessageIDLength {
		return r
	}
	sum := sha256.Sum256([]byte(r))
	return hex.EncodeToString(sum[:])
}

// Send implements bus.Driver.
func (d *Driver) Send(ctx context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error {
	body, err := bus.Encode(ctx, env, d.maxBytes, d.claims)
	if err != nil {
		return fmt.Errorf("cannot send %q to %q: %w", idOf(env), queue, err)
	}
	s, err := d.sender(queue)
	if err != nil {
		return err
	}
	m := toMessage(env, body)
	if opts != nil && opts.TTL > 0 {
		m.TimeToLive = to.Ptr(opts.TTL)
	}
	if opts != nil && opts.Delay > 0 {
		_, err = s.ScheduleMessages(ctx, []*azservicebus.Message{m}, time.Now().Add(opts.Delay), nil)
	} else {
		err = s.SendMessage(ctx, m, nil)
	}
	if err != nil {
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

// handle settles one received message on the link it came from.
type handle struct {
	d     *Driver
	r     *receiver
	queue string
	rm    *azservicebus.ReceivedMessage
}

// Receive implements bus.Driver. It waits at most ReceiveWait for a first
// message. lock is ignored: the queue's LockDuration applies.
func (d *Driver) Receive(ctx context.Context, queue string, max int, _ time.Duration) ([]*bus.Message, error) {
	return d.receive(ctx, queue, max, false)
}

// ReceiveDeadLetters implements bus.Driver: it reads queue's dead-letter
// sub-queue.
func (d *Driver) ReceiveDeadLetters(ctx context.Context, queue string, max int, _ time.Duration) ([]*bus.Message, error) {
	return d.receive(ctx, queue, max, true)
}

func (d *Driver) receive(ctx context.Context, queue string, n int, deadLetter bool) ([]*bus.Message, error) {
	if n < 1 {
		return nil, fmt.Errorf("cannot receive from %q: max %d must be positive", queue, n)
	}
	r, err := d.receiver(queue, deadLetter)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, d.wait)
	defer cancel()
	r.mu.Lock()
	rms, err := r.r.ReceiveMessages(wctx, n, nil)
	r.mu.Unlock()
	if err != nil && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
		return nil, fmt.Errorf("cannot receive from %q: %w", queue, err)
	}
	out := make([]*bus.Message, 0, len(rms))
	for _, rm := range rms {
		m := fromReceived(queue, rm)
		m.SetHandle(&handle{d: d, r: r, queue: queue, rm: rm}, deref(rm.LockedUntil))
		if deadLetter {
			m.DeadLetter = &bus.DeadLetterInfo{
				SourceQueue: queue, Reason: deref(rm.DeadLetterReason), Description: deref(rm.DeadLetterErrorDescription),
			}
			out = append(out, m)
			continue
		}
		ok, err := bus.Accept(ctx, d, m, d.maxDeliveries, d.claims, d.log)
		if err != nil {
			d.log.WarnContext(ctx, "abandoning message", "queue", queue, "err", err)
			_ = d.Abandon(ctx, m, 0)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// fromReceived decodes a received message; Envelope stays nil when the
// body is not an envelope.
func fromReceived(queue string, rm *azservicebus.ReceivedMessage) *bus.Message {
	count := int(rm.DeliveryCount)
	if p, ok := rm.ApplicationProperties[propPriorDeliveries]; ok {
		switch v := p.(type) {
		case int64:
			count += int(v)
		case int32:
			count += int(v)
		case int:
			count += v
		}
	}
	env, _ := envelope.Decode(rm.Body)
	m := bus.NewMessage(queue, env, rm.Body, count, deref(rm.LockedUntil), nil)
	m.EnqueuedAt = deref(rm.EnqueuedTime)
	return m
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

// mapErr turns a lost lock into bus.ErrLockLost.
func mapErr(what string, h *handle, err error) error {
	if err == nil {
		return nil
	}
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) && (sbErr.Code == azservicebus.CodeLockLost || sbErr.Code == azservicebus.CodeNotFound) {
		return fmt.Errorf("cannot %s message %s in %q: %w: %w", what, h.rm.MessageID, h.queue, bus.ErrLockLost, err)
	}
	return fmt.Errorf("cannot %s message %s in %q: %w", what, h.rm.MessageID, h.queue, err)
}

// Complete implements bus.Driver.
func (d *Driver) Complete(ctx context.Context, m *bus.Message) error {
	h, err := d.handleOf(m)
	if err != nil {
		return err
	}
	return mapErr("complete", h, h.r.r.CompleteMessage(ctx, h.rm, nil))
}

// Abandon implements bus.Driver.
func (d *Driver) Abandon(ctx context.Context, m *bus.Message, delay time.Duration) error {
	h, err := d.handleOf(m)
	if err != nil {
		return err
	}
	if delay <= 0 {
		return mapErr("abandon", h, h.r.r.AbandonMessage(ctx, h.rm, nil))
	}
	copyMsg := h.rm.Message()
	copyMsg.MessageID = to.Ptr(retryMessageID(h.rm.MessageID, m.DeliveryCount))
	copyMsg.ScheduledEnqueueTime = nil
	props := make(map[string]any, len(copyMsg.ApplicationProperties)+1)
	for k, v := range copyMsg.ApplicationProperties {
		props[k] = v
	}
	props[propPriorDeliveries] = int64(m.DeliveryCount)
	copyMsg.ApplicationProperties = props
	s, err := d.sender(h.queue)
	if err != nil {
		return err
	}
	if _, err := s.ScheduleMessages(ctx, []*azservicebus.Message{copyMsg}, time.Now().Add(delay), nil); err != nil {
		return mapErr("schedule retry of", h, err)
	}
	return mapErr("complete (after scheduling its retry)", h, h.r.r.CompleteMessage(ctx, h.rm, nil))
}

// DeadLetter implements bus.Driver.
func (d *Driver) DeadLetter(ctx context.Context, m *bus.Message, reason, description string) error {
	if reason == "" {
		return errors.New("cannot dead-letter: reason is empty")
	}
	h, err := d.handleOf(m)
	if err != nil {
		return err
	}
	return mapErr("dead-letter", h, h.r.r.DeadLetterMessage(ctx, h.rm, &azservicebus.DeadLetterOptions{
		Reason:           to.Ptr(bus.Truncate(reason, bus.MaxDescription)),
		ErrorDescription: to.Ptr(bus.Truncate(description, bus.MaxDescription)),
	}))
}

// RenewLock implements bus.Driver; lock is ignored (the queue's
// LockDuration applies).
func (d *Driver) RenewLock(ctx context.Context, m *bus.Message, _ time.Duration) error {
	h, err := d.handleOf(m)
	if err != nil {
		return err
	}
	if err := h.r.r.RenewMessageLock(ctx, h.rm, nil); err != nil {
		return mapErr("renew lock of", h, err)
	}
	m.SetHandle(h, deref(h.rm.LockedUntil))
	return nil
}

// Close implements bus.Driver.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	senders, receivers := d.senders, d.receivers
	d.senders, d.receivers = map[string]*azservicebus.Sender{}, map[receiverKey]*receiver{}
	d.mu.Unlock()
	var errs []error
	for _, s := range senders {
		errs = append(errs, s.Close(ctx))
	}
	for _, r := range receivers {
		errs = append(errs, r.r.Close(ctx))
	}
	errs = append(errs, d.client.Close(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot close service bus driver: %w", err)
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
