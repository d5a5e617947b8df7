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
// arrive on the cloud queue, which only Run reads.
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
// Replies come back on the cloud queue, so Run must be running: Call
// waits for it to start (ErrNotRunning when ctx ends first). With
// several replicas of a service reading the same queue, a replica that
// receives a reply for another replica's call puts it back for the others
// until its deadline.
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
	deadline, _ := ctx.Deadline()
	env.SetProtocolHeader(envelope.HeaderDeadline, deadline)
	reply, remove, err := c.calls.Add(env.ID, envelope.Identity{Tenant: tenant, Connector: connector})
	if err != nil {
		return nil, fmt.Errorf("cannot call connector: %w", err)
	}
	defer remove()
	if _, err := c.send(ctx, p); err != nil {
		return nil, err
	}
	select {
	case m := <-reply:
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("call %s to %s/%s: %w", env.ID, tenant, connector, ctx.Err())
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
	case c.now().Before(env.Deadline()):
		// Another replica's call, or one this process made before a
		// restart: let the others look until the deadline.
		c.settle(ctx, "abandon", m, func(ctx context.Context) error {
			return c.cfg.Bus.Abandon(ctx, m, min(time.Second, env.Deadline().Sub(c.now())))
		})
	default:
		c.calls.Late.Add(1)
		c.log.InfoContext(ctx, "late reply discarded", "id", env.ID, "correlation", env.CorrelationID, "from", env.From.String())
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
