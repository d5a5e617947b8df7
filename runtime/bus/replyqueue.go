package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"

	"github.com/botehq/platform/runtime/envelope"
)

// Replies to a cloud service's calls go to a queue of the calling
// process (instance) rather than to QueueCloud, which every replica of
// every service reads: there, a replica that did not make the call took
// the reply and put it back, each time a delivery, until the poison limit
// dead-lettered it while the caller waited.
//
// The address travels in the call's id, which the reply carries back as
// its correlation id without any help from the connector: a call id is
// "<32 hex>.<instance>" (CallID), and the gateway sends a reply whose
// correlation id has that form to ReplyQueue(instance), a queue that must
// exist (SendOptions.MustExist). No other queue can be named this way.

// replyQueuePrefix starts every instance's reply queue name.
const replyQueuePrefix = "bote-cloud-r-"

// callIDPattern is a call id made by CallID: 32 lowercase hex digits, a
// dot and the instance id, 16 more.
var callIDPattern = regexp.MustCompile(`^[0-9a-f]{32}\.([0-9a-f]{16})$`)

// NewInstance returns a new random instance id (16 hex digits).
func NewInstance() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ReplyQueue is the reply queue of instance, a valid Storage Queue and
// Service Bus queue name.
func ReplyQueue(instance string) string { return replyQueuePrefix + instance }

// CallID returns a new call id addressed to instance's reply queue.
func CallID(instance string) string { return envelope.NewID() + "." + instance }

// ReplyQueueOf returns the reply queue a reply with correlationID goes
// to, if the call's id was made by CallID.
func ReplyQueueOf(correlationID string) (string, bool) {
	m := callIDPattern.FindStringSubmatch(correlationID)
	if m == nil {
		return "", false
	}
	return ReplyQueue(m[1]), true
}

// ErrNoQueue reports a send with SendOptions.MustExist to a queue that
// does not exist.
var ErrNoQueue = errors.New("queue does not exist")

// QueueManager is implemented by drivers that create and delete queues at
// run time (the Storage Queue driver): a cloud client uses it for its
// reply queue.
type QueueManager interface {
	// CreateQueue creates queue name; one that exists is no error.
	CreateQueue(ctx context.Context, name string) error
	// DeleteQueue deletes queue name and what it holds; one that does
	// not exist is no error.
	DeleteQueue(ctx context.Context, name string) error
}
