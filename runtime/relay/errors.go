package relay

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors callers branch on with errors.Is. The relay's own refusals
// come back as *StatusError wrapping one of them.
var (
	// ErrUnauthorized: the relay refused the token (401) or the token lacks
	// the right for this entity and action (403). Permanent: fix the key,
	// rule or role assignment.
	ErrUnauthorized = errors.New("relay refused the credentials")
	// ErrNotFound: the namespace has no such hybrid connection (404), or it
	// was deleted or disabled. Permanent.
	ErrNotFound = errors.New("hybrid connection not found")
	// ErrNoListener: the hybrid connection exists but no listener is
	// connected (502 on HTTP requests, 404 naming the listener on connect).
	ErrNoListener = errors.New("no listener connected to the hybrid connection")
	// ErrQuotaExceeded: a limit such as 25 listeners per hybrid connection.
	ErrQuotaExceeded = errors.New("relay quota exceeded")
	// ErrTimeout: the listener did not answer within the relay's deadline
	// (504, 60 s for HTTP requests).
	ErrTimeout = errors.New("listener did not answer in time")
	// ErrUnreachable: the relay endpoint could not be reached at all (DNS,
	// TCP, TLS or proxy failure).
	ErrUnreachable = errors.New("relay unreachable")
	// ErrServiceError: the relay reported an internal error (500, close code
	// 1011). Transient.
	ErrServiceError = errors.New("relay service error")
)

// StatusError is a refusal by the relay service, with its HTTP status and
// description (which carries the service's tracking id).
type StatusError struct {
	Op          string // "listen", "connect", "accept", "request"
	StatusCode  int
	Description string
	kind        error
}

func (e *StatusError) Error() string {
	d := e.Description
	if d == "" {
		d = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("relay %s: %d %s: %v", e.Op, e.StatusCode, d, e.kind)
}

// Unwrap returns the sentinel error (ErrUnauthorized, ErrNotFound, ...).
func (e *StatusError) Unwrap() error { return e.kind }

// Permanent reports whether retrying cannot help.
func (e *StatusError) Permanent() bool {
	return errors.Is(e.kind, ErrUnauthorized) || errors.Is(e.kind, ErrNotFound)
}

// newStatusError classifies a status the relay answered a handshake or a
// request with.
func newStatusError(op string, code int, desc string) *StatusError {
	e := &StatusError{Op: op, StatusCode: code, Description: desc}
	lower := strings.ToLower(desc)
	switch {
	case code == http.StatusUnauthorized:
		e.kind = ErrUnauthorized
	case code == http.StatusForbidden && (strings.Contains(lower, "quota") || strings.Contains(lower, "limit")):
		e.kind = ErrQuotaExceeded
	case code == http.StatusForbidden:
		e.kind = ErrUnauthorized
	case code == http.StatusNotFound && op == "connect" && strings.Contains(lower, "listener"):
		// The service answers a WebSocket connect with 404 both for an
		// unknown entity and for an entity with no listener online; only
		// the description tells them apart (the .NET SDK maps both to
		// EndpointNotFoundException).
		e.kind = ErrNoListener
	case code == http.StatusNotFound:
		e.kind = ErrNotFound
	case code == http.StatusBadGateway:
		e.kind = ErrNoListener
	case code == http.StatusGatewayTimeout:
		e.kind = ErrTimeout
	default:
		e.kind = ErrServiceError
	}
	return e
}

// UnreachableError wraps a transport failure reaching the relay.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach relay %s: %v", e.Host, e.Err)
}

// Unwrap returns both ErrUnreachable and the cause.
func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// ListenerClosedError is what Accept returns once the listener gave up on a
// permanent failure; it wraps the cause (a *StatusError).
type ListenerClosedError struct{ Err error }

func (e *ListenerClosedError) Error() string {
	return fmt.Sprintf("relay listener stopped: %v", e.Err)
}

func (e *ListenerClosedError) Unwrap() error { return e.Err }
