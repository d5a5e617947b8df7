// Package calls keeps the calls (request/reply) a client is waiting on, for
// botecloud.Client.Call and connector.Client.Call: each call waits for one
// reply, correlated by the request's id, and only from the identity the
// call was addressed to. The identity compared is the reply's verified
// sender (envelope.Envelope.From as the gateway or a cloud service stamped
// it), never a header.
package calls

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/botehq/platform/runtime/envelope"
)

// ErrWrongReplier reports a reply from an identity other than the one the
// call went to.
var ErrWrongReplier = errors.New("reply from another identity")

// Set is the calls waiting for a reply of type T. The zero value is ready.
type Set[T any] struct {
	mu      sync.Mutex
	waiting map[string]*call[T]

	// Late counts replies discarded because nobody waited for them any
	// more (the caller's deadline passed); Expired counts messages not
	// handled because their deadline or time to live passed; Undecodable
	// counts messages not handled because their body could not be opened
	// (not sealed to this key, altered, a bomb, or clear where encryption
	// is required).
	Late, Expired, Undecodable atomic.Uint64
}

type call[T any] struct {
	to    envelope.Identity
	reply chan T
}

// ErrDuplicateCall reports a call whose request id another call already
// waits on (a caller-chosen id used twice at once): the second would take
// the first's reply, or wait for one that never comes.
var ErrDuplicateCall = errors.New("a call with this id is already waiting")

// Add registers a call with request id to identity to and returns the
// channel its reply arrives on and the function that removes it, to call
// when the call ends. A call with the same id already waiting is refused
// with ErrDuplicateCall.
func (s *Set[T]) Add(id string, to envelope.Identity) (<-chan T, func(), error) {
	c := &call[T]{to: to, reply: make(chan T, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting[id] != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrDuplicateCall, id)
	}
	if s.waiting == nil {
		s.waiting = map[string]*call[T]{}
	}
	s.waiting[id] = c
	return c.reply, func() { s.remove(id, c) }, nil
}

// remove forgets call c with request id, if it is still the one waiting.
func (s *Set[T]) remove(id string, c *call[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting[id] == c {
		delete(s.waiting, id)
	}
}

// Deliver hands reply to the call with id correlationID if one waits here
// and reports whether one did. A reply from any identity but the call's
// is refused with ErrWrongReplier and the call keeps waiting.
func (s *Set[T]) Deliver(correlationID string, from envelope.Identity, reply T) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.waiting[correlationID]
	if c == nil {
		return false, nil
	}
	if from != c.to {
		return false, fmt.Errorf("%w: the call went to %s, the reply is from %s", ErrWrongReplier, c.to.String(), from.String())
	}
	delete(s.waiting, correlationID)
	c.reply <- reply
	return true, nil
}
