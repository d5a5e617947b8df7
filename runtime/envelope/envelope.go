// Package envelope is the one wire format of every message on the gateway's
// bus queues ("bote-cloud", "bote-connectors", "bote-errors") and on the
// per-connector Storage Queues.
//
// An Envelope is encoded as JSON (version 1). The encoding is pure ASCII:
// every non-ASCII character is written as a \u escape and Go's encoder
// already escapes '<', '>' and '&', so the text can be placed in a Storage
// Queue XML request as is and its length in bytes is exactly what the
// service counts. A Storage Queue message may hold MaxQueueMessageBytes
// (64 KiB) of UTF-8 message text; Fits reports whether an encoded envelope
// fits, and senders move a body that does not fit to Blob storage (see
// package claimcheck) and carry a Claim instead.
//
// Identity: From is the verified sender. Only the gateway sets it on what a
// connector sends (from the connector's validated token), and only a cloud
// service sets it on what the cloud sends. Header names starting with
// ReservedHeaderPrefix ("bote-") and identity-looking names ("tenant",
// "x-connector-id", ...) are reserved, whatever their case and separators
// ("bote_from", "x.tenant.id"; see IsReservedHeader); CheckConnectorHeaders rejects them
// when a connector supplies them, so a connector can never claim an identity
// or a route through headers.
//
// Decode never panics and returns a *DecodeError for anything it cannot turn
// into a valid envelope; consumers send such messages to the error queue
// instead of retrying them.
package envelope

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/botehq/platform/runtime/ids"
)

// Version is the envelope format version written by Encode.
const Version = 1

// MaxQueueMessageBytes is the largest Storage Queue message text, in UTF-8
// bytes after XML decoding (Put Message limit; Azurite checks the same).
const MaxQueueMessageBytes = 64 * 1024

// MaxIDLength is the longest message or correlation id (Service Bus caps
// MessageId at 128 characters).
const MaxIDLength = 128

// ContentType is the media type of an encoded envelope, used where a
// transport has a content-type property (Service Bus).
const ContentType = "application/vnd.bote.envelope+json; v=1"

// Kind says how a message is routed.
type Kind string

const (
	// KindTargeted goes to one connector: Tenant and Connector are set.
	KindTargeted Kind = "targeted"
	// KindBroadcast goes to every connector of Tenant subscribed to Topic.
	KindBroadcast Kind = "broadcast"
	// KindCloud goes from a connector to the cloud: From is set by the gateway.
	KindCloud Kind = "cloud"
)

// Identity is a verified sender: a connector (Tenant and Connector) or a
// cloud service (Service).
type Identity struct {
	Tenant    string `json:"tenant,omitempty"`
	Connector string `json:"connector,omitempty"`
	Service   string `json:"service,omitempty"`
}

// IsConnector reports whether the identity names a connector.
func (i Identity) IsConnector() bool { return i.Tenant != "" && i.Connector != "" }

// IsService reports whether the identity names a cloud service and nothing
// else (the only sender form allowed on "bote-connectors").
func (i Identity) IsService() bool { return i.Service != "" && i.Tenant == "" && i.Connector == "" }

// String renders "tenant/connector" for a connector, else the service name.
func (i Identity) String() string {
	if i.IsConnector() {
		return i.Tenant + "/" + i.Connector
	}
	return i.Service
}

// Validate checks that the identity is either a valid connector or a
// service name, not both and not neither.
func (i Identity) Validate() error {
	switch {
	case i.Service != "" && (i.Tenant != "" || i.Connector != ""):
		return errors.New("from: service and tenant/connector are exclusive")
	case i.Service != "":
		if !namePattern.MatchString(i.Service) || len(i.Service) > MaxIDLength {
			return fmt.Errorf("from.service %q must be 1 to %d letters, digits, '.', '_' or '-'", i.Service, MaxIDLength)
		}
		return nil
	}
	if err := ids.Validate("from.tenant", i.Tenant); err != nil {
		return err
	}
	return ids.Validate("from.connector", i.Connector)
}

// Claim refers to a body kept in Blob storage because it does not fit the
// queue message (claim check). URL, when set, is a read-only SAS URL scoped
// to that one blob and valid until URLExpiresAt.
type Claim struct {
	Container    string    `json:"container"`
	Blob         string    `json:"blob"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	URL          string    `json:"url,omitempty"`
	URLExpiresAt time.Time `json:"urlExpiresAt,omitzero"`
}

// Validate checks the claim's required fields.
func (c *Claim) Validate() error {
	switch {
	case c.Container == "":
		return errors.New("claim.container is empty")
	case c.Blob == "":
		return errors.New("claim.blob is empty")
	case c.Size < 0:
		return fmt.Errorf("claim.size %d is negative", c.Size)
	case len(c.SHA256) != 64:
		return fmt.Errorf("claim.sha256 %q is not a hex SHA-256", c.SHA256)
	}
	if _, err := hex.DecodeString(c.SHA256); err != nil {
		return fmt.Errorf("claim.sha256 %q is not a hex SHA-256", c.SHA256)
	}
	return nil
}

// Envelope is one message. Body and Claim are exclusive.
type Envelope struct {
	// ID is stable across redeliveries and retries; consumers deduplicate on it.
	ID            string `json:"id"`
	CorrelationID string `json:"correlationId,omitempty"`
	// ReplyTo optionally names where a reply should go (an application
	// address; the gateway itself replies to From).
	ReplyTo   string            `json:"replyTo,omitempty"`
	Kind      Kind              `json:"kind"`
	Tenant    string            `json:"tenant,omitempty"`
	Connector string            `json:"connector,omitempty"`
	Topic     string            `json:"topic,omitempty"`
	From      *Identity         `json:"from,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	// ContentType is the media type of Body.
	ContentType string    `json:"contentType,omitempty"`
	Body        []byte    `json:"body,omitempty"`
	Claim       *Claim    `json:"claim,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	// Signature, when set, is the sender's signature (see Sign): a cloud
	// service's, which the gateway requires from services whose key it
	// holds, or the gateway's, which cloud services holding its key require.
	Signature string `json:"sig,omitempty"`
}

// wire is the encoded form: the envelope plus the format version.
type wire struct {
	V int `json:"v"`
	*Envelope
}

// NewID returns a random 128-bit message id in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

var (
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	topicPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

// MaxTopicLength is the longest topic name.
const MaxTopicLength = 128

// ValidateTopic checks a broadcast topic name: 1 to MaxTopicLength ASCII
// letters, digits, '.', '_', '-' and '/', starting with a letter or digit.
func ValidateTopic(topic string) error {
	if topic == "" || len(topic) > MaxTopicLength || !topicPattern.MatchString(topic) {
		return fmt.Errorf("topic %q must be 1 to %d letters, digits, '.', '_', '-' or '/', starting with a letter or digit", topic, MaxTopicLength)
	}
	return nil
}

// Validate checks that the envelope is complete and consistent for its
// Kind. Header names are checked for syntax only; whether reserved names are
// allowed depends on who sent the message (see CheckConnectorHeaders).
func (e *Envelope) Validate() error {
	if e.ID == "" || len(e.ID) > MaxIDLength || !utf8.ValidString(e.ID) {
		return fmt.Errorf("id %q must be 1 to %d characters", e.ID, MaxIDLength)
	}
	if len(e.CorrelationID) > MaxIDLength {
		return fmt.Errorf("correlationId is %d characters, the limit is %d", len(e.CorrelationID), MaxIDLength)
	}
	switch e.Kind {
	case KindTargeted:
		if err := ids.Validate("tenant", e.Tenant); err != nil {
			return err
		}
		if err := ids.Validate("connector", e.Connector); err != nil {
			return err
		}
		if e.Topic != "" {
			return errors.New("topic must be empty on a targeted message")
		}
	case KindBroadcast:
		if err := ids.Validate("tenant", e.Tenant); err != nil {
			return err
		}
		if err := ValidateTopic(e.Topic); err != nil {
			return err
		}
		if e.Connector != "" {
			return errors.New("connector must be empty on a broadcast message")
		}
	case KindCloud:
		if e.From == nil || !e.From.IsConnector() {
			return errors.New("from must name the sending connector on a cloud message")
		}
		// Identity is From alone; routing fields would only invite a
		// consumer to read them as identity.
		if e.Tenant != "" || e.Connector != "" || e.Topic != "" {
			return errors.New("tenant, connector and topic must be empty on a cloud message (the sender is in from)")
		}
	default:
		return fmt.Errorf("kind %q is not one of %q, %q, %q", e.Kind, KindTargeted, KindBroadcast, KindCloud)
	}
	if e.From != nil {
		if err := e.From.Validate(); err != nil {
			return err
		}
	}
	if e.Claim != nil {
		if len(e.Body) > 0 {
			return errors.New("body and claim are exclusive")
		}
		if err := e.Claim.Validate(); err != nil {
			return err
		}
	}
	if err := validateHeaderSyntax(e.Headers); err != nil {
		return err
	}
	if err := checkProtocolHeaders(e.Headers); err != nil {
		return err
	}
	if e.CreatedAt.IsZero() {
		return errors.New("createdAt is empty")
	}
	if len(e.Signature) > MaxSignatureLength {
		return fmt.Errorf("sig is %d characters, the limit is %d", len(e.Signature), MaxSignatureLength)
	}
	return nil
}

// Clone returns a deep copy (headers, body, from and claim are not shared).
func (e *Envelope) Clone() *Envelope {
	c := *e
	if e.From != nil {
		f := *e.From
		c.From = &f
	}
	if e.Claim != nil {
		cl := *e.Claim
		c.Claim = &cl
	}
	if e.Headers != nil {
		c.Headers = make(map[string]string, len(e.Headers))
		for k, v := range e.Headers {
			c.Headers[k] = v
		}
	}
	if e.Body != nil {
		c.Body = append([]byte(nil), e.Body...)
	}
	return &c
}

// Encode validates env and returns its ASCII-only JSON encoding.
func Encode(env *Envelope) ([]byte, error) {
	if env == nil {
		return nil, errors.New("cannot encode envelope: nil")
	}
	if err := env.Validate(); err != nil {
		return nil, fmt.Errorf("cannot encode envelope %q: %w", env.ID, err)
	}
	raw, err := json.Marshal(wire{V: Version, Envelope: env})
	if err != nil {
		return nil, fmt.Errorf("cannot encode envelope %q: %w", env.ID, err)
	}
	return asciiJSON(raw), nil
}

// asciiJSON rewrites every non-ASCII rune of a JSON document as a \u escape
// (a surrogate pair above U+FFFF). Non-ASCII bytes only occur inside JSON
// strings, where the escape means the same character.
func asciiJSON(raw []byte) []byte {
	i := bytes.IndexFunc(raw, func(r rune) bool { return r >= utf8.RuneSelf })
	if i < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+16)
	out = append(out, raw[:i]...)
	for _, r := range string(raw[i:]) {
		switch {
		case r < utf8.RuneSelf:
			out = append(out, byte(r))
		case r > 0xFFFF:
			r -= 0x10000
			out = appendU(out, 0xD800+(r>>10))
			out = appendU(out, 0xDC00+(r&0x3FF))
		default:
			out = appendU(out, r)
		}
	}
	return out
}

func appendU(b []byte, r rune) []byte {
	b = append(b, '\\', 'u')
	s := strconv.FormatInt(int64(r), 16)
	for n := len(s); n < 4; n++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// Fits reports whether an encoded envelope fits one Storage Queue message.
func Fits(encoded []byte) bool { return len(encoded) <= MaxQueueMessageBytes }

// ErrUndecodable is wrapped by every *DecodeError.
var ErrUndecodable = errors.New("undecodable envelope")

// DecodeError reports a message that is not a valid envelope. It is final:
// retrying the same bytes fails the same way, so the message belongs in the
// error queue.
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("undecodable envelope: %s: %v", e.Reason, e.Err)
	}
	return "undecodable envelope: " + e.Reason
}

// Unwrap returns the cause and ErrUndecodable.
func (e *DecodeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrUndecodable, e.Err}
	}
	return []error{ErrUndecodable}
}

// Decode parses and validates an encoded envelope. Unknown fields are
// ignored (forward compatibility within version 1); a different version, bad
// JSON or an invalid envelope yield a *DecodeError.
func Decode(data []byte) (*Envelope, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &DecodeError{Reason: "empty message"}
	}
	w := wire{Envelope: &Envelope{}}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, &DecodeError{Reason: "not JSON", Err: err}
	}
	if w.V != Version {
		return nil, &DecodeError{Reason: fmt.Sprintf("version %d, want %d", w.V, Version)}
	}
	if err := w.Envelope.Validate(); err != nil {
		return nil, &DecodeError{Reason: "invalid envelope", Err: err}
	}
	return w.Envelope, nil
}
