package envelope

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// Protocol headers: the few names in the reserved space that the gateway's
// own code (botecloud, connector, the gateway) writes into Headers to carry
// delivery semantics that are not identity. Applications never set them:
// botecloud.OutMessage, connector.OutMessage and the sidecar's local API
// refuse every reserved name (CheckConnectorHeaders), and the libraries add
// these after that check. A receiver accepts them only in this exact
// spelling and with a valid value (CheckSentHeaders); any other spelling is
// still a reserved header and refused. They are part of Headers, so a
// signed envelope signs them too.
const (
	// HeaderDeadline is the deadline of a call (request/reply): the
	// caller's context deadline, RFC 3339 in UTC. A receiver drops a
	// request whose deadline passed (the caller gave up) and runs its
	// handler under that deadline; the reply carries the same deadline, and
	// a reply after it is discarded.
	HeaderDeadline = "bote-deadline"
	// HeaderExpiresAt is a message's time to live as an instant (RFC 3339,
	// UTC): after it the message goes to the error queue with reason
	// "expired", never to a handler.
	HeaderExpiresAt = "bote-expires-at"
	// HeaderContentEncoding says the body is compressed (EncodingGzip);
	// package payload undoes it.
	HeaderContentEncoding = "bote-content-encoding"
	// HeaderEncryption says the body is encrypted to the recipient's key
	// (EncryptionHPKE); package payload opens it.
	HeaderEncryption = "bote-encryption"
)

// Values of HeaderContentEncoding and HeaderEncryption.
const (
	EncodingGzip   = "gzip"
	EncryptionHPKE = "hpke-p256-sha256-aes256gcm"
)

// protocolHeaders are the headers CheckSentHeaders allows, each with the
// check of its value.
var protocolHeaders = map[string]func(string) error{
	HeaderDeadline:        checkTime,
	HeaderExpiresAt:       checkTime,
	HeaderContentEncoding: oneOf(EncodingGzip),
	HeaderEncryption:      oneOf(EncryptionHPKE),
}

func checkTime(v string) error {
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return errors.New("is not an RFC 3339 time")
	}
	return nil
}

func oneOf(allowed string) func(string) error {
	return func(v string) error {
		if v != allowed {
			return fmt.Errorf("is not %q", allowed)
		}
		return nil
	}
}

// checkProtocolHeaders checks the values of the protocol headers in h.
func checkProtocolHeaders(h map[string]string) error {
	for name, check := range protocolHeaders {
		if v, ok := h[name]; ok {
			if err := check(v); err != nil {
				return fmt.Errorf("headers: %s %q %w", name, v, err)
			}
		}
	}
	return nil
}

// IsProtocolHeader reports whether name is one of the protocol headers, in
// its exact spelling.
func IsProtocolHeader(name string) bool {
	return protocolHeaders[name] != nil
}

// CheckSentHeaders is CheckConnectorHeaders for an envelope the gateway's
// code assembled: the protocol headers (exact spelling, valid value) are
// allowed, every other reserved name is refused with ErrReservedHeader.
func CheckSentHeaders(h map[string]string) error {
	return checkHeaders(h, true)
}

// FormatTime renders t as a protocol header value.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// headerTime returns the time in header name, or zero when it is absent or
// malformed (Validate refuses a malformed one).
func (e *Envelope) headerTime(name string) time.Time {
	v, ok := e.Headers[name]
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Deadline is the call deadline (HeaderDeadline), zero when the message is
// not part of a call.
func (e *Envelope) Deadline() time.Time { return e.headerTime(HeaderDeadline) }

// ExpiresAt is when the message expires (HeaderExpiresAt), zero for never.
func (e *Envelope) ExpiresAt() time.Time { return e.headerTime(HeaderExpiresAt) }

// IsReply reports whether the envelope answers a call: it is correlated
// and carries the call's deadline.
func (e *Envelope) IsReply() bool {
	return e.CorrelationID != "" && !e.Deadline().IsZero()
}

// ErrExpired reports a message whose deadline or time to live has passed.
var ErrExpired = errors.New("message expired")

// ReasonExpired is the error-queue reason of an expired message, the same
// at every hop.
const ReasonExpired = "expired"

// CheckExpired returns an error wrapping ErrExpired when the envelope's
// deadline or expiry is at or before now.
func (e *Envelope) CheckExpired(now time.Time) error {
	if d := e.Deadline(); !d.IsZero() && !now.Before(d) {
		return fmt.Errorf("%w: its caller gave up at %s (deadline)", ErrExpired, FormatTime(d))
	}
	if x := e.ExpiresAt(); !x.IsZero() && !now.Before(x) {
		return fmt.Errorf("%w: its time to live ended at %s", ErrExpired, FormatTime(x))
	}
	return nil
}

// SetProtocolHeader sets a time-valued protocol header on a copy of the
// envelope's headers (the map may be shared with the caller's message); a
// zero time removes it.
func (e *Envelope) SetProtocolHeader(name string, t time.Time) {
	v := ""
	if !t.IsZero() {
		v = FormatTime(t)
	}
	e.SetProtocolValue(name, v)
}

// SetProtocolValue sets protocol header name to v on a copy of the
// envelope's headers; an empty v removes it.
func (e *Envelope) SetProtocolValue(name, v string) {
	if !IsProtocolHeader(name) {
		panic("envelope: " + name + " is not a protocol header")
	}
	h := maps.Clone(e.Headers)
	if h == nil {
		h = map[string]string{}
	}
	delete(h, name)
	if v != "" {
		h[name] = v
	}
	if len(h) == 0 {
		h = nil
	}
	e.Headers = h
}

// ApplicationHeaders returns h without the protocol headers (nil when
// nothing is left), which is what a handler sees.
func ApplicationHeaders(h map[string]string) map[string]string {
	var out map[string]string
	for k, v := range h {
		if IsProtocolHeader(k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(h))
		}
		out[k] = v
	}
	return out
}

// Schedule turns a send's scheduling options into the delay the bus
// defers it by and the instant it expires (HeaderExpiresAt; zero for
// never): deliverAt or delay (exclusive; a time in the past is now), and
// ttl counted from the delivery time.
func Schedule(deliverAt time.Time, delay, ttl time.Duration, now time.Time) (time.Duration, time.Time, error) {
	switch {
	case !deliverAt.IsZero() && delay != 0:
		return 0, time.Time{}, errors.New("DeliverAt and Delay are exclusive")
	case delay < 0:
		return 0, time.Time{}, fmt.Errorf("Delay %s is negative", delay)
	case ttl < 0:
		return 0, time.Time{}, fmt.Errorf("TTL %s is negative", ttl)
	case !deliverAt.IsZero():
		delay = max(deliverAt.Sub(now), 0)
	}
	var expires time.Time
	if ttl > 0 {
		expires = now.Add(delay + ttl)
	}
	return delay, expires, nil
}
