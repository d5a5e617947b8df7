// Package bus is the contract between the gateway's components and the
// queues they exchange envelopes over: "bote-connectors" (cloud → gateway),
// "bote-cloud" (gateway → cloud services) and the error queue.
//
// Two drivers implement Driver: storagequeue (Azure Storage Queues, also
// Azurite on a laptop and in CI) and servicebus (Azure Service Bus). Package
// busdriver opens the one a binary is configured for; package bustest holds
// the contract suite every driver passes.
//
// Semantics every driver keeps:
//
//   - Delivery is at least once. A received message is locked (invisible to
//     other receivers) for the lock duration; Complete removes it, Abandon
//     makes it visible again (after a delay, for delayed retries), RenewLock
//     extends the lock for long handling. A lock that expired is lost: the
//     message may already be with another receiver, and settling it fails
//     with ErrLockLost.
//   - DeliveryCount starts at 1 and grows with every delivery of the same
//     message, including redeliveries after a delayed Abandon.
//   - A message that is not a valid envelope never reaches the caller: the
//     driver dead-letters it with the decode error as the reason. So does a
//     message delivered more than the driver's MaxDeliveries (poison).
//   - A body too large for the transport travels by claim check (package
//     claimcheck); receivers get the body back transparently.
//   - DeadLetter keeps the original message and the reason; ReceiveDeadLetters
//     reads them back (operators, tests, replay tools).
//
// Receive does not block for long: it returns what is available, possibly
// nothing, after waiting at most a short driver-specific time. Consumers
// poll with backoff (see package botecloud).
package bus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/envelope"
)

// Queue names shared by every component.
const (
	QueueCloud      = "bote-cloud"      // gateway → cloud services
	QueueConnectors = "bote-connectors" // cloud services → gateway
	QueueErrors     = "bote-errors"     // dead letters (Storage Queue driver)
)

// Errors drivers return; callers branch on them with errors.Is.
var (
	// ErrLockLost: the message's lock expired or it was settled already.
	ErrLockLost = errors.New("message lock lost")
	// ErrTooLarge: the envelope cannot be sent even by claim check.
	ErrTooLarge = errors.New("message too large")
	// ErrForeignMessage: a Message from another driver was passed in.
	ErrForeignMessage = errors.New("message does not belong to this driver")
	// ErrClosed: the driver was closed.
	ErrClosed = errors.New("bus driver closed")
	// ErrDelayTooLong: a scheduled send's delay is beyond what the
	// transport can defer (Storage Queues: 7 days).
	ErrDelayTooLong = errors.New("delay too long for this bus")
)

// Driver is the bus contract. Drivers are safe for concurrent use.
type Driver interface {
	// Send enqueues env on queue. With opts.Delay > 0 the message becomes
	// visible only after the delay.
	Send(ctx context.Context, queue string, env *envelope.Envelope, opts *SendOptions) error
	// Receive returns up to max messages from queue, each locked for lock.
	Receive(ctx context.Context, queue string, max int, lock time.Duration) ([]*Message, error)
	// Complete removes a handled message.
	Complete(ctx context.Context, m *Message) error
	// Abandon releases the lock; the message is redelivered after delay.
	Abandon(ctx context.Context, m *Message, delay time.Duration) error
	// DeadLetter moves the message to the error queue, keeping reason and
	// description.
	DeadLetter(ctx context.Context, m *Message, reason, description string) error
	// RenewLock extends the lock to lock from now.
	RenewLock(ctx context.Context, m *Message, lock time.Duration) error
	// ReceiveDeadLetters returns up to max dead letters that came from
	// queue, locked like Receive; Complete removes them.
	ReceiveDeadLetters(ctx context.Context, queue string, max int, lock time.Duration) ([]*Message, error)
	// Close releases connections. Messages still locked are redelivered
	// after their lock expires.
	Close(ctx context.Context) error
}

// SendOptions tune one Send.
type SendOptions struct {
	// Delay defers visibility (scheduled delivery): Service Bus schedules
	// the message; a Storage Queue hides it with its visibility timeout,
	// at most 7 days (storagequeue.MaxDelay), and a longer delay fails
	// with ErrDelayTooLong rather than arriving early.
	Delay time.Duration
	// MustExist sends only to a queue that exists: the driver does not
	// create it (whatever its CreateQueues setting) and a missing queue
	// fails with ErrNoQueue. The gateway sends replies to an instance's
	// reply queue (ReplyQueueOf) so: a missing one means the caller is gone.
	MustExist bool
	// TTL, when positive, is how long the message may wait to be received
	// once visible, after which the transport drops it (Storage Queue:
	// the message's time to live in whole seconds, rounded up; Service
	// Bus: the message's TimeToLive). The gateway gives a reply to a
	// reply queue the time until the call's deadline, so a queue whose
	// process crashed empties itself.
	TTL time.Duration
}

// DeadLetterInfo describes why a message is in the error queue.
type DeadLetterInfo struct {
	SourceQueue    string
	Reason         string
	Description    string
	DeadLetteredAt time.Time
}

// Message is one received envelope plus the driver's handle to settle it.
type Message struct {
	// Envelope is the decoded message (its Body resolved from a claim check).
	// For dead letters of undecodable messages it is nil and Raw holds the
	// original bytes.
	Envelope *envelope.Envelope
	// Raw is the message as it was on the queue (may be nil for drivers
	// that do not keep it).
	Raw []byte
	// Queue the message was received from.
	Queue string
	// DeliveryCount is 1 on first delivery.
	DeliveryCount int
	// EnqueuedAt is when the transport accepted the message (zero if unknown).
	EnqueuedAt time.Time
	// DeadLetter is set on messages returned by ReceiveDeadLetters.
	DeadLetter *DeadLetterInfo

	mu          sync.Mutex
	lockedUntil time.Time
	handle      any
}

// NewMessage is for drivers: it wraps a received message with the driver's
// settlement handle.
func NewMessage(queue string, env *envelope.Envelope, raw []byte, deliveryCount int, lockedUntil time.Time, handle any) *Message {
	return &Message{Envelope: env, Raw: raw, Queue: queue, DeliveryCount: deliveryCount, lockedUntil: lockedUntil, handle: handle}
}

// Handle returns the driver's settlement handle.
func (m *Message) Handle() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handle
}

// SetHandle is for drivers whose handle changes on renewal (Storage Queue
// pop receipts).
func (m *Message) SetHandle(h any, lockedUntil time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handle = h
	m.lockedUntil = lockedUntil
}

// LockedUntil is when the current lock expires, as last known by the driver.
func (m *Message) LockedUntil() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lockedUntil
}
