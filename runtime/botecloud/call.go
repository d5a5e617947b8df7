package botecloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/payload"
)

// DefaultCallTimeout bounds a Call whose context has no deadline.
const DefaultCallTimeout = 30 * time.Second

// ErrNotRunning is returned by Call when Run is not receiving: replies
// arrive on queues only Run reads.
var ErrNotRunning = errors.New("cloud client is not running (Call needs Run to receive the reply)")

// ErrCallCorrelated is returned by Call for a message with a
// CorrelationID: a correlated message carrying a deadline is a reply, so
// the other side would take the call for a reply to one of its own calls
// and never hand it to its handler.
var ErrCallCorrelated = errors.New("a call cannot carry a CorrelationID (the receiver would take it for a reply)")

// Stats are the client's counters.
type Stats struct {
	// LateReplies counts replies discarded because their call had already
	// given up (its deadline passed) or was not made by this process.
	LateReplies uint64
	// Expired counts messages sent to the error queue with reason
	// "expired" instead of to the handler.
	Expired uint64
	// Undecodable counts messages sent to the error queue because their
	// body could not be opened: encrypted to another key (a wrong
	// DecryptionKey shows here first), altered, inflating past the limit.
	Undecodable uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{LateReplies: c.calls.Late.Load(), Expired: c.calls.Expired.Load(), Undecodable: c.calls.Undecodable.Load()}
}

// Call sends msg to one connector and waits for its reply (the connector's
// handler answers with connector.Client.Reply). The context's deadline
// (DefaultCallTimeout when it has none) travels with the request: the
// connector drops the request if it arrives later and runs its handler
// under that deadline. Only a reply whose verified sender is
// tenant/connector is accepted. When ctx ends first Call returns its
// error, and a reply arriving later is discarded (Stats.LateReplies).
//
// Replies are read by Run, so Run must be running: Call waits for it to
// start (ErrNotRunning when ctx ends first) and returns ErrNotRunning if
// Run ends before the reply comes. When the bus can make queues
// (bus.QueueManager: the Storage Queue driver) Run makes one for this
// instance (process) and the call's id names it (bus.CallID), so the
// gateway sends the reply there and no other replica of the service sees
// it; that needs msg.ID empty. Otherwise the reply comes on the cloud
// queue, which all replicas read: one that receives a reply for another
// replica's call puts it back for the others until its deadline, each
// time a delivery, so with several replicas such a reply can reach the
// bus's poison limit before the caller gets it.
func (c *Client) Call(ctx context.Context, tenant, connector string, msg OutMessage) (*Message, error) {
	if msg.CorrelationID != "" {
		return nil, fmt.Errorf("cannot call connector: %w", ErrCallCorrelated)
	}
	p, err := c.targeted(tenant, connector, msg)
	if err != nil {
		return nil, fmt.Errorf("cannot call connector: %w", err)
	}
	env := p.env
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	if err := c.waitRunning(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	ownQueue, stopped := c.replyQueue != "", c.runChanged
	c.mu.Unlock()
	if ownQueue && msg.ID == "" {
		env.ID = bus.CallID(c.instance) // the reply comes to this instance's queue
	}
	deadline, _ := ctx.Deadline()
	env.SetProtocolHeader(envelope.HeaderDeadline, deadline)
	reply, remove, err := c.calls.Add(env.ID, envelope.Identity{Tenant: tenant, Connector: connector})
	if err != nil {
		return nil, fmt.Errorf("cannot call connector: %w", err)
	}
	defer remove()
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case c.callStarted <- struct{}{}:
	default:
	}
	if _, err := c.send(ctx, p); err != nil {
		return nil, err
	}
	select {
	case m := <-reply:
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("call %s to %s/%s: %w", env.ID, tenant, connector, ctx.Err())
	case <-stopped:
		// Run ended: nothing reads the reply any more (this instance's
		// reply queue is deleted with it).
		return nil, fmt.Errorf("call %s to %s/%s: %w", env.ID, tenant, connector, ErrNotRunning)
	}
}

// waitRunning waits until Run receives (a program may start Run and Call
// at once), or ctx ends.
func (c *Client) waitRunning(ctx context.Context) error {
	for {
		c.mu.Lock()
		running, changed := c.running, c.runChanged
		c.mu.Unlock()
		if running {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotRunning, ctx.Err())
		}
	}
}

// errNotEncrypted refuses a clear body under Config.RequireEncryption.
var errNotEncrypted = errors.New("body is not encrypted and this service requires encryption (is the connector's CloudKey set?)")

// processUndecodable opens m's body in place (decryption, decompression)
// and dead-letters it when that fails, reporting whether it did: the same
// bytes would fail the same way every time.
func (c *Client) processUndecodable(ctx context.Context, m *bus.Message) bool {
	var body []byte
	err := errNotEncrypted
	if !c.cfg.RequireEncryption || m.Envelope.Headers[envelope.HeaderEncryption] != "" {
		body, err = payload.DecodeEnvelope(m.Envelope, c.cfg.DecryptionKey, payload.CloudRecipient, c.cfg.MaxBodyBytes)
	}
	if err == nil {
		m.Envelope.Body = body
		return false
	}
	c.calls.Undecodable.Add(1)
	c.log.WarnContext(ctx, "cannot open message body", "id", m.Envelope.ID, "from", m.Envelope.From.String(), "err", err)
	c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
		return c.cfg.Bus.DeadLetter(ctx, m, "undecodable payload", err.Error())
	})
	return true
}

// processReply settles a reply to a call and reports whether m was one.
func (c *Client) processReply(ctx context.Context, m *bus.Message) bool {
	env := m.Envelope
	if !env.IsReply() {
		return false
	}
	took, err := c.calls.Deliver(env.CorrelationID, *env.From, c.message(m, 1))
	switch {
	case err != nil:
		// A connector answering a call that went elsewhere: refused, and
		// the call keeps waiting for the right one.
		c.log.WarnContext(ctx, "audit: reply_from_wrong_sender", "audit", true, "event", "reply_from_wrong_sender",
			"id", env.ID, "correlation", env.CorrelationID, "from", env.From.String(), "err", err)
		c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
			return c.cfg.Bus.DeadLetter(ctx, m, "unverified sender", err.Error())
		})
	case took:
		c.settle(ctx, "complete", m, func(ctx context.Context) error { return c.cfg.Bus.Complete(ctx, m) })
	case m.Queue != bus.ReplyQueue(c.instance) && c.now().Before(env.Deadline()):
		// On the shared cloud queue: another replica's call (made with an
		// id of its own choosing, or through a gateway that does not route
		// replies to reply queues), or one this process made before a
		// restart: let the others look until the deadline. On this
		// instance's own queue nobody else would: the call gave up.
		c.settle(ctx, "abandon", m, func(ctx context.Context) error {
			return c.cfg.Bus.Abandon(ctx, m, min(time.Second, env.Deadline().Sub(c.now())))
		})
	default:
		c.calls.Late.Add(1)
		c.log.InfoContext(ctx, "late reply discarded", "id", env.ID, "correlation", env.CorrelationID, "from", env.From.String(), "queue", m.Queue)
		c.settle(ctx, "complete", m, func(ctx context.Context) error { return c.cfg.Bus.Complete(ctx, m) })
	}
	return true
}

// processExpired dead-letters m with reason "expired" if its deadline or
// time to live passed, and reports whether it did.
func (c *Client) processExpired(ctx context.Context, m *bus.Message) bool {
	err := m.Envelope.CheckExpired(c.now())
	if err == nil {
		return false
	}
	c.calls.Expired.Add(1)
	c.log.InfoContext(ctx, "expired message not handled", "id", m.Envelope.ID, "err", err)
	c.settle(ctx, "dead-letter", m, func(ctx context.Context) error {
		return c.cfg.Bus.DeadLetter(ctx, m, envelope.ReasonExpired, err.Error())
	})
	return true
}

// openReplyQueue creates this instance's reply queue when the bus can
// (bus.QueueManager) and returns its name, or "" when replies are to come
// on the cloud queue.
func (c *Client) openReplyQueue(ctx context.Context) string {
	qm, ok := c.cfg.Bus.(bus.QueueManager)
	if !ok {
		return ""
	}
	name := bus.ReplyQueue(c.instance)
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := qm.CreateQueue(ctx, name); err != nil {
		c.log.WarnContext(ctx, "cannot create this instance's reply queue; replies to its calls come on the cloud queue, shared with the other replicas",
			"queue", name, "err", err)
		return ""
	}
	return name
}

// closeReplyQueue deletes the reply queue when Run ends: replies to this
// instance's calls that come later find no queue, and the gateway
// discards them as late.
func (c *Client) closeReplyQueue(ctx context.Context, name string) {
	if name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := c.cfg.Bus.(bus.QueueManager).DeleteQueue(ctx, name); err != nil {
		c.log.WarnContext(ctx, "cannot delete this instance's reply queue", "queue", name, "err", err)
	}
}

// readReplies reads the reply queue until ctx ends: every PollMin while a
// call waits; otherwise with the wait doubling up to PollMax, so a reply
// that comes after its call gave up is still discarded and counted
// (Stats.LateReplies) soon.
func (c *Client) readReplies(ctx, work context.Context, queue string, h Handler) {
	wait := c.cfg.PollMin
	for ctx.Err() == nil {
		ms, err := c.cfg.Bus.Receive(ctx, queue, 32, c.cfg.Lock)
		if err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "cannot receive; backing off", "queue", queue, "err", err, "wait", wait)
		}
		for _, m := range ms {
			c.process(work, m, h)
		}
		if len(ms) > 0 {
			continue
		}
		if c.waiting.Load() > 0 {
			wait = c.cfg.PollMin
		}
		t := time.NewTimer(wait)
		select {
		case <-c.callStarted:
			wait = c.cfg.PollMin
		case <-t.C:
			wait = min(wait*2, c.cfg.PollMax)
		case <-ctx.Done():
		}
		t.Stop()
	}
}
