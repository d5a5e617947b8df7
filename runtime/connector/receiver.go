package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/seen"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Dead-letter reasons the connector reports.
const (
	ReasonUndecodable = "undecodable"
	ReasonPoison      = "poison"
	// ReasonMisaddressed: the message is not addressed to this connector
	// (another connector or tenant, or not a cloud→connector kind).
	ReasonMisaddressed = "misaddressed"
	// ReasonUnverifiedSender: From is not a cloud service, or a header uses
	// a reserved name. The gateway never routes such a message, so it was
	// put on the queue by other means.
	ReasonUnverifiedSender = "unverified-sender"
)

// receiver reads the connector's queue when woken (connect, nudge) and on
// the safety poll, and runs handlers.
type receiver struct {
	c     *Client
	log   *slog.Logger
	slots chan struct{}
	wg    sync.WaitGroup
	// handlerCtx is what handlers run under; it ends DrainTimeout after
	// Run's context.
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc

	// handedOut holds the queue message ids of deliveries handed to a
	// handler: a delivery is not a read, so when the message comes back
	// its dequeue count is one short.
	handedOut *seen.Set

	mu       sync.Mutex
	stopping bool // run is waiting for its handlers: take no deliveries
	access   sessionproto.QueueAccess
	client   *azqueue.QueueClient
	reread   *time.Timer // after a lost read, see readLost
}

func newReceiver(ctx context.Context, c *Client) *receiver {
	r := &receiver{c: c, log: c.log, slots: make(chan struct{}, c.cfg.Concurrency), handedOut: seen.New(10_000, time.Hour)}
	// Handlers outlive ctx by up to DrainTimeout, then their contexts end;
	// an unfinished message comes back after its visibility timeout.
	r.handlerCtx, r.cancelHandlers = context.WithCancel(context.WithoutCancel(ctx))
	return r
}

func (r *receiver) run(ctx context.Context) {
	defer r.cancelHandlers()
	defer func() {
		r.mu.Lock()
		r.stopping = true
		r.mu.Unlock()
		t := time.AfterFunc(r.c.cfg.DrainTimeout, r.cancelHandlers)
		defer t.Stop()
		r.wg.Wait()
	}()
	poll := time.NewTicker(r.c.cfg.SafetyPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.c.wake:
		case <-poll.C:
		}
		if err := r.drain(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("cannot read the queue; trying again soon", "err", err)
			time.AfterFunc(retry.Backoff(time.Second, 10*time.Second, 3), r.c.nudge)
		}
	}
}

// queue returns a client for the connector's queue with a SAS valid for at
// least another minute. The SAS is kept across sessions: while the gateway is
// unreachable the connector still reads its queue until the SAS expires.
func (r *receiver) queue(ctx context.Context, force bool) (*azqueue.QueueClient, error) {
	r.mu.Lock()
	client, access := r.client, r.access
	r.mu.Unlock()
	if client != nil && !force && time.Until(access.ExpiresAt) > time.Minute {
		return client, nil
	}
	s, err := r.c.session(ctx)
	if err != nil {
		return nil, err
	}
	reply, err := s.request(ctx, sessionproto.Frame{Type: sessionproto.TypeQueueAccess})
	if err != nil {
		return nil, fmt.Errorf("cannot get queue access: %w", err)
	}
	a := reply.QueueAccess
	if a == nil || a.URL == "" {
		return nil, errors.New("cannot get queue access: the gateway sent no URL")
	}
	qc, err := azqueue.NewQueueClientWithNoCredential(a.URL, &azqueue.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: lossWatch{next: r.c.cfg.HTTPClient, lost: r.readLost}}})
	if err != nil {
		return nil, fmt.Errorf("cannot use queue URL: %w", err)
	}
	r.mu.Lock()
	r.client, r.access = qc, *a
	r.mu.Unlock()
	return qc, nil
}

// lossWatch passes the queue client's requests on and calls lost for a
// read (dequeue) whose answer did not arrive whole: a transport error
// (timeout, reset) or a server error. The service may have carried the
// read out all the same, hiding its messages for the visibility timeout,
// and the SDK's retry or the next drain then finds the queue empty.
type lossWatch struct {
	next *http.Client
	lost func()
}

func (w lossWatch) Do(req *http.Request) (*http.Response, error) {
	resp, err := w.next.Do(req)
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/messages") && (err != nil || resp.StatusCode >= 500) {
		w.lost()
	}
	return resp, err
}

// readLost schedules one more read just after the visibility timeout of a
// read that may have been lost, when its messages are visible again, so
// they do not wait for the safety poll. A later loss moves the read later.
func (r *receiver) readLost() {
	due := r.c.cfg.Visibility + time.Second
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reread == nil {
		r.reread = time.AfterFunc(due, r.c.nudge)
		return
	}
	r.reread.Reset(due)
}

// drain reads until a read returns fewer messages than it asked for,
// running up to Concurrency handlers. A short read ends the drain without a
// confirming read of an empty queue: the gateway nudges after every enqueue
// (routing.Router.deliver), so a message that arrives after the short read
// brings a nudge that wakes the receiver again (a nudge during the drain
// waits in c.wake); a lost nudge is covered by the safety poll.
func (r *receiver) drain(ctx context.Context) error {
	forced := false
	for ctx.Err() == nil {
		// Wait for at least one free handler slot before taking messages,
		// so none sits invisible waiting for a slot.
		select {
		case r.slots <- struct{}{}:
			<-r.slots
		case <-ctx.Done():
			return nil
		}
		q, err := r.queue(ctx, forced)
		if err != nil {
			return err
		}
		want := min(int32(max(1, cap(r.slots)-len(r.slots))), 32)
		vis := int32(r.c.cfg.Visibility / time.Second)
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &want, VisibilityTimeout: &vis})
		switch {
		case queueerror.HasCode(err, queueerror.QueueNotFound):
			return nil // nothing was ever routed here
		case queueerror.HasCode(err, queueerror.AuthenticationFailed, queueerror.AuthorizationFailure) && !forced:
			forced = true // SAS expired or the key rotated: get a new one
			continue
		case err != nil:
			return fmt.Errorf("cannot dequeue: %w", err)
		}
		forced = false
		for _, m := range resp.Messages {
			if m.MessageID == nil || m.PopReceipt == nil {
				continue
			}
			r.slots <- struct{}{}
			r.wg.Add(1)
			go func() {
				defer func() { <-r.slots; r.wg.Done() }()
				r.process(r.handlerCtx, q, m, r.c.cfg.Visibility)
			}()
		}
		if len(resp.Messages) < int(want) {
			return nil
		}
	}
	return nil
}

// take handles a message the gateway delivered in a frame: it is on the
// queue already, hidden for d.VisibilitySeconds, so it is handled as if a
// read had returned it, without the read. With no handler slot free it is
// released (visible again at once) for a later read. If neither happens
// (no session, the process ends) it is visible again when its visibility
// ends; the receiver reads the queue that long after every connect.
func (r *receiver) take(d sessionproto.Delivery) {
	r.mu.Lock()
	stopping := r.stopping
	if !stopping {
		select {
		case r.slots <- struct{}{}:
			r.wg.Add(1)
		default:
			stopping = true // no slot: release it
		}
	}
	r.mu.Unlock()
	if stopping {
		go r.release(d)
		return
	}
	go func() {
		defer func() { <-r.slots; r.wg.Done() }()
		q, err := r.queue(r.handlerCtx, false)
		if err != nil {
			r.log.Warn("cannot handle a delivered message now; it is read from the queue later", "queue_message", d.MessageID, "err", err)
			return
		}
		r.handedOut.Add(d.MessageID)
		r.process(r.handlerCtx, q, &azqueue.DequeuedMessage{MessageID: &d.MessageID, PopReceipt: &d.PopReceipt, MessageText: &d.Text},
			time.Duration(d.VisibilitySeconds)*time.Second)
	}()
}

// release makes a delivered message that cannot be handled now visible
// again, and reads the queue when a handler slot is free.
func (r *receiver) release(d sessionproto.Delivery) {
	ctx, cancel := context.WithTimeout(r.handlerCtx, 10*time.Second)
	defer cancel()
	if _, err := r.extend(ctx, d.MessageID, d.PopReceipt, d.Text, 0); err != nil {
		r.log.Debug("cannot release a delivered message; it is visible again after its visibility", "queue_message", d.MessageID, "err", err)
		return
	}
	r.c.nudge()
}

// dequeueCount is how often qm was handed out: by reads, and by a
// delivery before them (1 for a delivery, which has none).
func (r *receiver) dequeueCount(qm *azqueue.DequeuedMessage) int {
	if qm.DequeueCount == nil {
		return 1
	}
	count := int(*qm.DequeueCount)
	if r.handedOut.Has(*qm.MessageID) {
		count++ // handed out once by a delivery before the reads
	}
	return count
}

// process handles qm, hidden on the queue for vis from now.
func (r *receiver) process(ctx context.Context, q *azqueue.QueueClient, qm *azqueue.DequeuedMessage, vis time.Duration) {
	id, pop, count, text := *qm.MessageID, *qm.PopReceipt, r.dequeueCount(qm), ""
	if qm.MessageText != nil {
		text = *qm.MessageText
	}
	log := r.log.With("queue_message", id, "dequeue_count", count)

	env, err := envelope.Decode([]byte(text))
	if err != nil {
		r.deadLetter(ctx, q, id, pop, sessionproto.DeadLetter{Reason: ReasonUndecodable, Description: err.Error(), MessageID: id, DequeueCount: count, Text: text}, log)
		return
	}
	log = log.With("message", env.ID)
	if reason, err := r.c.refusal(env, count); err != nil {
		r.deadLetter(ctx, q, id, pop, sessionproto.DeadLetter{Reason: reason, Description: err.Error(), MessageID: env.ID, DequeueCount: count, Text: text}, log)
		return
	}
	if r.c.recent.Has(env.ID) || r.c.durable.Has(env.ID) {
		log.Debug("already handled; deleting duplicate")
		r.delete(ctx, q, id, pop, log)
		return
	}
	msg, err := r.message(ctx, env, count)
	if errors.Is(err, errFetch) {
		log.Warn("cannot fetch claim-checked body; will retry", "err", err)
		r.retryLater(ctx, id, pop, text, count, log)
		return
	} else if err != nil {
		r.c.calls.Undecodable.Add(1)
		r.deadLetter(ctx, q, id, pop, sessionproto.DeadLetter{Reason: ReasonUndecodable, Description: err.Error(), MessageID: env.ID, DequeueCount: count, Text: text}, log)
		return
	}
	if isReply, err := r.c.deliverReply(env, msg); isReply {
		if err != nil {
			log.Warn("audit: reply_from_wrong_sender", "audit", true, "event", "reply_from_wrong_sender", "err", err)
			r.deadLetter(ctx, q, id, pop, sessionproto.DeadLetter{Reason: ReasonUnverifiedSender, Description: err.Error(), MessageID: env.ID, DequeueCount: count, Text: text}, log)
			return
		}
		r.delete(ctx, q, id, pop, log)
		return
	}

	var mu sync.Mutex // guards pop, which extensions renew
	stop, extended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(extended)
		r.keepInvisible(ctx, stop, id, text, vis, &pop, &mu, log)
	}()
	herr := r.safeHandle(ctx, msg)
	close(stop)
	<-extended // an extension in flight finishes, so pop is current
	mu.Lock()
	current := pop
	mu.Unlock()
	if herr != nil {
		log.Warn("handler failed; the message will come back", "err", herr)
		r.retryLater(ctx, id, current, text, count, log)
		return
	}
	r.c.recent.Add(env.ID)
	if r.c.durable != nil {
		// Recorded before the delete: a crash between the two leaves a
		// message that comes back and is then deleted unhandled.
		if err := r.c.durable.Add(env.ID); err != nil {
			log.Warn("cannot record handled message for dedup across restarts", "err", err)
		}
	}
	r.delete(ctx, q, id, current, log)
}

func (r *receiver) safeHandle(ctx context.Context, m *Message) (err error) {
	if !m.Deadline.IsZero() {
		// The caller gives up then; so does the handler.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, m.Deadline)
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return r.c.cfg.Handler.Handle(ctx, m)
}

// keepInvisible extends the message's visibility, hidden for vis from
// now, to Visibility at half of what is left each time, until stop is
// closed (the handler finished). An extension in flight is completed,
// never abandoned: its new pop receipt is needed to delete the message.
func (r *receiver) keepInvisible(ctx context.Context, stop <-chan struct{}, id, text string, vis time.Duration, pop *string, mu *sync.Mutex, log *slog.Logger) {
	t := time.NewTimer(vis / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mu.Lock()
		cur := *pop
		mu.Unlock()
		ectx, cancel := context.WithTimeout(ctx, r.c.cfg.Visibility/2)
		next, err := r.extend(ectx, id, cur, text, r.c.cfg.Visibility)
		cancel()
		t.Reset(r.c.cfg.Visibility / 2)
		if err != nil {
			log.Warn("cannot extend visibility; the message may be handed out again", "err", err)
			continue
		}
		mu.Lock()
		*pop = next
		mu.Unlock()
	}
}

func (r *receiver) extend(ctx context.Context, id, pop, text string, vis time.Duration) (string, error) {
	s, err := r.c.session(ctx)
	if err != nil {
		return "", err
	}
	reply, err := s.request(ctx, sessionproto.Frame{Type: sessionproto.TypeExtend, Extend: &sessionproto.Extend{MessageID: id, PopReceipt: pop, Text: text, VisibilitySeconds: int(vis / time.Second)}})
	if err != nil {
		return "", err
	}
	if reply.Extend == nil || reply.Extend.PopReceipt == "" {
		return "", errors.New("gateway sent no pop receipt")
	}
	return reply.Extend.PopReceipt, nil
}

// retryLater makes a failed message visible again after a delay growing
// with its dequeue count (RetryDelay, twice that, four times ... up to 5
// minutes). Without a session, the visibility timeout set at dequeue does
// the same, coarser.
func (r *receiver) retryLater(ctx context.Context, id, pop, text string, count int, log *slog.Logger) {
	delay := min(r.c.cfg.RetryDelay<<min(count-1, 10), 5*time.Minute)
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.extend(ectx, id, pop, text, delay); err != nil {
		log.Debug("cannot schedule retry; visibility timeout applies", "err", err)
		delay = r.c.cfg.Visibility
	}
	// No nudge will announce the retry: read the queue when it is due.
	time.AfterFunc(delay+100*time.Millisecond, r.c.nudge)
}

func (r *receiver) delete(ctx context.Context, q *azqueue.QueueClient, id, pop string, log *slog.Logger) {
	if _, err := q.DeleteMessage(ctx, id, pop, nil); err != nil {
		// Handled but not deleted: it comes back once its visibility
		// timeout passes and is then deleted as a recent duplicate; read
		// again by then so it does not wait for the safety poll.
		log.Warn("cannot delete handled message", "err", err)
		time.AfterFunc(r.c.cfg.Visibility+time.Second, r.c.nudge)
	}
}

// deadLetter hands a message to the gateway's connector error queue, then
// deletes it. Without a session it stays; the next read tries again.
func (r *receiver) deadLetter(ctx context.Context, q *azqueue.QueueClient, id, pop string, d sessionproto.DeadLetter, log *slog.Logger) {
	// Bounded: without a session (or while stopping) the message simply
	// stays in the queue for a later read.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := r.c.session(dctx)
	if err == nil {
		_, err = s.request(dctx, sessionproto.Frame{Type: sessionproto.TypeDeadLetter, DeadLetter: &d})
	}
	if err != nil {
		log.Warn("cannot dead-letter message; will retry", "reason", d.Reason, "err", err)
		return
	}
	log.Warn("message moved to the connector error queue", "reason", d.Reason, "description", d.Description)
	r.delete(ctx, q, id, pop, log)
}
