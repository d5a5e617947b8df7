package routing

import (
	"context"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Deliverer hands a message to a session of its connector on this
// replica, which saves the connector reading its queue: a routed message
// then costs the connector queue a put and a delete instead of a put, a
// get and a delete (docs/benchmarks.md, storage operations per routed
// message).
type Deliverer interface {
	// Deliverable reports whether id has a session on this replica that
	// takes deliveries (sessionproto.TypeDeliver), and how long a message
	// delivered to it is to stay hidden (the connector's visibility
	// timeout: a lost delivery is then like a lost read).
	Deliverable(id ids.ConnectorID) (visibility time.Duration, ok bool)
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
	if vis, ok := r.deliverable(id); ok {
		q := r.cfg.Queues.(HiddenQueues)
		var m sessionproto.Delivery
		err := r.enqueue(ctx, func() (err error) {
			m, err = q.EnqueueHidden(ctx, id, text, vis)
			return err
		})
		if err != nil {
			return err
		}
		if !r.cfg.Deliverer.Deliver(id, m, func() { r.release(id, m) }) {
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

func (r *Router) deliverable(id ids.ConnectorID) (time.Duration, bool) {
	if r.cfg.Deliverer == nil {
		return 0, false
	}
	return r.cfg.Deliverer.Deliverable(id)
}

// release makes a message whose delivery failed visible at once and nudges
// its connector (another session may hold it). If that fails too, the
// message is visible once its visibility ends, and the connector reads its
// queue that long after it reconnects.
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
