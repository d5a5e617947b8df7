package routing

import (
	"context"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/sessionproto"
)

// DefaultDeliverVisibility is how long a message handed to a session
// (Deliverer) stays hidden on its queue: long enough for the connector to
// receive it and extend it (at half of it), short enough that a delivery
// lost with its session is on the queue again soon; the connector reads its
// queue this long after every (re)connect for that reason.
const DefaultDeliverVisibility = 30 * time.Second

// Deliverer hands a message to a session of its connector on this
// replica, which saves the connector reading its queue: a routed message
// then costs the connector queue a put and a delete instead of a put, a
// get and a delete (docs/benchmarks.md, storage operations per routed
// message).
type Deliverer interface {
	// Deliverable reports whether id has a session on this replica that
	// takes deliveries (sessionproto.TypeDeliver).
	Deliverable(id ids.ConnectorID) bool
	// Deliver hands d to one such session without blocking and reports
	// whether there was one; failed runs if the frame could not be
	// written.
	Deliver(id ids.ConnectorID, d sessionproto.Delivery, failed func()) bool
}

// HiddenQueues are Queues that can put a message hidden, returning it as a
// read would, and make it visible again (package connqueue).
type HiddenQueues interface {
	Queues
	EnqueueHidden(ctx context.Context, id ids.ConnectorID, text string, visibility time.Duration) (sessionproto.Delivery, error)
	Release(ctx context.Context, id ids.ConnectorID, d sessionproto.Delivery) error
}

func isHidden(q Queues) bool {
	_, ok := q.(HiddenQueues)
	return ok
}

// put puts text on id's queue and lets the connector know: when a session
// of id on this replica takes deliveries, the message goes on the queue
// hidden and straight to that session, so only it handles the message and
// the connector need not read its queue; otherwise the message goes on the
// queue visible and the connector is nudged. Either way the message is on
// the connector's queue before put returns, so the bus message may be
// completed: nothing is lost if the session drops.
func (r *Router) put(ctx context.Context, id ids.ConnectorID, text string) error {
	if d := r.cfg.Deliverer; d != nil && d.Deliverable(id) {
		q := r.cfg.Queues.(HiddenQueues)
		var m sessionproto.Delivery
		err := r.enqueue(ctx, func() (err error) {
			m, err = q.EnqueueHidden(ctx, id, text, r.cfg.DeliverVisibility)
			return err
		})
		if err != nil {
			return err
		}
		if !d.Deliver(id, m, func() { r.release(id, m) }) {
			r.release(id, m) // the session went in the meantime
		}
		return nil
	}
	if err := r.enqueue(ctx, func() error { return r.cfg.Queues.Enqueue(ctx, id, text) }); err != nil {
		return err
	}
	if r.nudges != nil {
		r.nudges.add(id)
	}
	return nil
}

// release makes a message whose delivery failed visible at once and nudges
// its connector (another session may hold it). If that fails too, the
// message is visible once DeliverVisibility ends, and the connector reads
// its queue that long after it reconnects.
func (r *Router) release(id ids.ConnectorID, m sessionproto.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cfg.Queues.(HiddenQueues).Release(ctx, id, m); err != nil {
		r.log.Warn("cannot release a message whose delivery failed; it is visible again after the delivery visibility", "connector", id.String(), "err", err)
	}
	if r.nudges != nil {
		r.nudges.add(id)
	}
}
