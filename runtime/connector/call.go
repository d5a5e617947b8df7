package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/envelope"
)

// DefaultCallTimeout bounds a Call whose context has no deadline.
const DefaultCallTimeout = 30 * time.Second

// ErrCallCorrelated is returned by Call for a message with a
// CorrelationID: a correlated message carrying a deadline is a reply, so
// the service would take the call for a reply to one of its own calls and
// never hand it to its handler.
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

// Call sends m to the cloud service named service and waits for its reply
// (the service's handler answers with botecloud.Client.Reply). The
// context's deadline (DefaultCallTimeout when it has none) travels with the
// request: the service drops the request if it arrives later and runs its
// handler under that deadline. Only a reply whose verified sender is that
// service is accepted. When ctx ends first Call returns its error and a
// reply arriving later is discarded (Stats.LateReplies).
//
// Connectors send to one cloud queue; service names the service expected
// to answer, so configure it to the one that reads that queue. Run must be
// running: the reply arrives on the connector's queue.
func (c *Client) Call(ctx context.Context, service string, m OutMessage) (*Message, error) {
	if m.CorrelationID != "" {
		return nil, fmt.Errorf("cannot call %q: %w", service, ErrCallCorrelated)
	}
	to := envelope.Identity{Service: service}
	if err := to.Validate(); err != nil {
		return nil, fmt.Errorf("cannot call %q: %w", service, err)
	}
	if !c.running.Load() {
		return nil, errors.New("cannot call: the connector is not running (Call needs Run to receive the reply)")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	if m.ID == "" {
		m.ID = envelope.NewID()
	}
	deadline, _ := ctx.Deadline()
	reply, remove, err := c.calls.Add(m.ID, to)
	if err != nil {
		return nil, fmt.Errorf("cannot call %q: %w", service, err)
	}
	defer remove()
	if _, err := c.send(ctx, m, deadline); err != nil {
		return nil, err
	}
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("call %s to %s: %w", m.ID, service, ctx.Err())
	}
}

// Reply sends m to the cloud as the answer to req (a Call from a cloud
// service): correlated to it and carrying its deadline, so a reply the
// caller no longer waits for is discarded.
func (c *Client) Reply(ctx context.Context, req *Message, m OutMessage) (string, error) {
	if req == nil || !req.From.IsService() {
		return "", errors.New("cannot reply: request has no cloud service sender")
	}
	m.CorrelationID = req.ID
	return c.send(ctx, m, req.Deadline)
}

// deliverReply hands a reply to the Call waiting for it and reports
// whether msg was a reply (and so must not reach the handler). The error
// is set for a reply from an identity the call did not go to.
func (c *Client) deliverReply(env *envelope.Envelope, msg *Message) (bool, error) {
	if !env.IsReply() {
		return false, nil
	}
	took, err := c.calls.Deliver(env.CorrelationID, msg.From, msg)
	if err != nil || took {
		return true, err
	}
	c.calls.Late.Add(1)
	c.log.Info("late reply discarded", "message", env.ID, "correlation", env.CorrelationID, "from", msg.From.String())
	return true, nil
}
