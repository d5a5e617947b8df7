package botecloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/retry"
)

// Message is a received connector message.
type Message struct {
	ID            string
	CorrelationID string
	ReplyTo       string
	// From is the sending connector as verified by the gateway.
	From        envelope.Identity
	Headers     map[string]string
	ContentType string
	Body        []byte
	CreatedAt   time.Time
	// Deadline is set when the message is a Call: the caller gives up
	// then, the handler's context ends then, and Reply carries it back.
	Deadline time.Time
	// ExpiresAt is the message's time to live as an instant (zero: none).
	ExpiresAt time.Time
	// DeliveryCount is the transport's count (1 on first delivery);
	// Attempt counts handler calls within this delivery (1 first).
	DeliveryCount, Attempt int
}

// Handler handles one message. Returning nil completes it; an error
// retries it (see the package doc); Permanent(err) dead-letters it at once.
// It has the shape of connector.Handler, its counterpart on the connector's
// side.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

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
	replyQueue, err := c.start(ctx)
	if err != nil {
		return err
	}
	defer c.stop(ctx, replyQueue)

	// Handlers outlive ctx by up to DrainTimeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	slots := make(chan struct{}, c.cfg.Concurrency)
	var wg sync.WaitGroup
	if replyQueue != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.readReplies(ctx, work, replyQueue, h)
		}()
	}
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

// start marks the client running, with its reply queue (see Call), or
// returns ErrRunning.
func (c *Client) start(ctx context.Context) (replyQueue string, err error) {
	c.mu.Lock()
	if c.running || c.starting {
		c.mu.Unlock()
		return "", ErrRunning
	}
	c.starting = true
	c.mu.Unlock()
	replyQueue = c.openReplyQueue(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starting = false
	c.replyQueue = replyQueue
	c.setRunning(true)
	return replyQueue, nil
}

// stop marks the client stopped (waiting calls end) and deletes its reply
// queue.
func (c *Client) stop(ctx context.Context, replyQueue string) {
	c.mu.Lock()
	c.replyQueue = ""
	c.setRunning(false)
	c.mu.Unlock()
	c.closeReplyQueue(ctx, replyQueue)
}

// setRunning sets running and wakes waitRunning; c.mu is held.
func (c *Client) setRunning(running bool) {
	c.running = running
	close(c.runChanged)
	c.runChanged = make(chan struct{})
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
			return c.cfg.Bus.DeadLetter(ctx, m, "unverified sender", "a message on the cloud queue must be a connector message stamped by the gateway")
		})
		return
	}
	if err := c.verifyGateway(env); err != nil {
		c.log.WarnContext(ctx, "audit: forged_envelope_refused", "audit", true, "event", "forged_envelope_refused",
			"id", env.ID, "from", env.From.String(), "err", err)
		c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
			return c.cfg.Bus.DeadLetter(ctx, m, "unverified sender", err.Error())
		})
		return
	}
	if c.processUndecodable(ctx, m) || c.processReply(ctx, m) || c.processExpired(ctx, m) {
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

// verifyGateway checks the gateway's signature when GatewayKeys are set.
func (c *Client) verifyGateway(env *envelope.Envelope) error {
	if len(c.cfg.GatewayKeys) == 0 {
		return nil
	}
	var err error
	for _, k := range c.cfg.GatewayKeys {
		if err = env.VerifySignature(k); err == nil {
			return nil
		}
	}
	return fmt.Errorf("not signed by the gateway: %w", err)
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

	hctx := ctx
	if d := m.Envelope.Deadline(); !d.IsZero() {
		// The caller gives up then; so does the handler.
		var cancelCall context.CancelFunc
		hctx, cancelCall = context.WithDeadline(ctx, d)
		defer cancelCall()
	}
	var err error
	for attempt := 1; attempt <= 1+c.cfg.ImmediateRetries; attempt++ {
		err = callHandler(hctx, h, c.message(m, attempt))
		if err == nil || IsPermanent(err) || hctx.Err() != nil {
			return err
		}
		log.DebugContext(ctx, "handler failed; immediate retry", "attempt", attempt, "err", err)
	}
	return err
}

// message is what a handler (or a Call) gets of m.
func (c *Client) message(m *bus.Message, attempt int) *Message {
	env := m.Envelope
	return &Message{
		ID: env.ID, CorrelationID: env.CorrelationID, ReplyTo: env.ReplyTo,
		From: *env.From, Headers: envelope.ApplicationHeaders(env.Headers), ContentType: env.ContentType,
		Body: env.Body, CreatedAt: env.CreatedAt, Deadline: env.Deadline(), ExpiresAt: env.ExpiresAt(),
		DeliveryCount: m.DeliveryCount, Attempt: attempt,
	}
}

// callHandler turns a handler panic into an error so one bad message cannot
// take the service down.
func callHandler(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h.Handle(ctx, m)
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
