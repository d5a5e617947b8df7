// Package sessionproto is the connector session protocol spoken over the
// gateway's WebSocket: the frame types, their JSON form, the error codes and
// the limits both sides agree on.
//
// The gateway (package gatewayserver/session) on one side and the connector library
// (package connector), its sidecar (connector/sidecar) and the ops agent
// (package agent) on the other all use these definitions, so the sides cannot
// drift; that is why the package is not filed under gatewayserver. The
// protocol is versioned by its WebSocket subprotocol, Subprotocol ("bote.v1");
// a breaking change gets a new subprotocol and the gateway keeps serving the
// old one for as long as connectors in the field speak it. docs/gateway.md
// describes the protocol for implementers in other languages.
//
// Every frame is one WebSocket text message holding one JSON object with a
// "type". Requests from the connector carry an "id" chosen by the connector;
// the gateway answers each request exactly once, with a frame of the reply type
// or an "error" frame, carrying the same id. Frames the gateway sends on its
// own (hello, nudge, error without id) have no id.
package sessionproto

import (
	"encoding/json"
	"fmt"
	"time"
)

// Subprotocol is the WebSocket subprotocol of this protocol version. The
// gateway refuses a session that does not offer it.
const Subprotocol = "bote.v1"

// ConnectPath is the gateway's session endpoint.
const ConnectPath = "/v1/connect"

// DeliverParam is the query parameter with which a connector opening a
// session at ConnectPath asks the gateway to deliver messages in TypeDeliver
// frames (see there) instead of only nudging. Its value is how long, in
// whole seconds (MinDeliverSeconds to MaxDeliverSeconds), a delivered
// message stays hidden on the queue: the connector's visibility timeout,
// as for a message it reads. A connector without it gets nudges only.
const DeliverParam = "deliver"

// Bounds of DeliverParam.
const (
	MinDeliverSeconds = 2
	MaxDeliverSeconds = 3600
)

// WakePath is the gateway's route wake endpoint: a POST with no body makes
// the replica that receives it read the bus queue bote-connectors now
// instead of at its next poll. Cloud services call it after putting a
// message there (botecloud.Config.WakeURL). It carries nothing and needs no
// identity: the gateway honours wakes whose read finds nothing at most once
// per --route-poll-min, so calling it costs no more than polling did.
const WakePath = "/v1/route-wake"

// MaxFrameBytes is the largest frame the gateway reads. A larger frame is
// answered with an error frame (CodeFrameTooLarge) and the session goes on; a
// frame beyond HardFrameLimit closes the session (status 1009), since reading
// it to the end would cost the gateway more than the connector.
const (
	MaxFrameBytes  = 256 << 10
	HardFrameLimit = 4 * MaxFrameBytes
)

// Frame types.
const (
	// TypeHello is the gateway's first frame: the verified identity of the
	// session and the limits in force.
	TypeHello = "hello"
	// TypeSend asks the gateway to put a message on the cloud queue. Answered
	// with TypeAck once the bus has accepted the message.
	TypeSend = "send"
	// TypeSubscribe and TypeUnsubscribe change the connector's topic
	// subscriptions. Answered with TypeAck.
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	// TypeQueueAccess asks for a SAS URL of the connector's own queue.
	// Answered with TypeQueueAccess carrying QueueAccess.
	TypeQueueAccess = "queue_access"
	// TypeExtend asks the gateway to keep a message the connector is still
	// handling invisible for longer (the SAS does not allow updates).
	// Answered with TypeExtend carrying the new pop receipt.
	TypeExtend = "extend"
	// TypeDeadLetter hands the gateway a message from the connector's queue
	// that the connector cannot handle (undecodable, or failed too often),
	// for the connector error queue. Answered with TypeAck; the connector
	// then deletes it from its queue.
	TypeDeadLetter = "dead_letter"
	// TypeUpload asks for a write-only URL to upload a body too large for a
	// frame; the connector PUTs the body there (a block blob) and then sends
	// the message with Message.Claim instead of Body. Answered with
	// TypeUpload carrying Upload.
	TypeUpload = "upload"
	// TypeAuth presents a fresh access token for the session, before the
	// one it was opened with expires. The token must name the same tenant
	// and connector. Answered with TypeAck. A session whose token expired
	// without renewal is closed with CloseTokenExpired.
	TypeAuth = "auth"
	// TypeAck confirms a request.
	TypeAck = "ack"
	// TypeNudge tells the connector that its queue has messages.
	TypeNudge = "nudge"
	// TypeDeliver hands the connector a message that the gateway has just put
	// on the connector's queue, hidden (Delivery), so the connector need not
	// read its queue for it: it handles the message and deletes it with the
	// pop receipt, as if it had read it. If the connector cannot handle it
	// now it releases it (TypeExtend with visibility 0); a delivery lost
	// on the way reappears on the queue when its visibility ends. Sent only
	// on sessions opened with DeliverParam.
	TypeDeliver = "deliver"
	// TypeError reports a failed request (with its id) or a frame the gateway
	// could not read (without id).
	TypeError = "error"
)

// Error codes carried by error frames.
const (
	// CodeBadFrame: the frame is not a JSON object of a known shape.
	CodeBadFrame = "bad_frame"
	// CodeFrameTooLarge: the frame exceeds MaxFrameBytes. Nothing from it
	// was processed.
	CodeFrameTooLarge = "frame_too_large"
	// CodeUnknownType: the frame's type is not one this version knows.
	CodeUnknownType = "unknown_type"
	// CodeIdentityHeader: the message sets a header that carries identity
	// or routing (tenant, connector, from, any "bote-" name). Only the
	// gateway sets those.
	CodeIdentityHeader = "identity_header"
	// CodeInvalidMessage: the message is malformed (bad id, header or size).
	CodeInvalidMessage = "invalid_message"
	// CodeInvalidTopic: the topic is not a valid topic name.
	CodeInvalidTopic = "invalid_topic"
	// CodeUnavailable: a backing service (bus, table, queue) failed; the
	// request may be retried.
	CodeUnavailable = "unavailable"
	// CodeShuttingDown: the gateway is stopping; reconnect (to another
	// replica) and retry.
	CodeShuttingDown = "shutting_down"
	// CodeUnauthorized: an auth frame's token is invalid or names another
	// identity.
	CodeUnauthorized = "unauthorized"
)

// CloseTokenExpired is the WebSocket close code of a session whose access
// token expired without an auth frame renewing it. The connector reconnects
// with a fresh token.
const CloseTokenExpired = 4001

// CloseRevoked is the close code of a session whose connector was removed
// from the registry or disabled. Reconnecting will fail.
const CloseRevoked = 4003

// CloseSessionLimit is the close code of a connector's oldest session when
// the connector opened more sessions on one gateway replica than it may hold at once
// (the gateway's per-connector cap). The newer sessions stay open.
const CloseSessionLimit = 4004

// Frame is one protocol frame. Which fields are set depends on Type.
type Frame struct {
	Type string `json:"type"`
	// ID correlates a request with its reply.
	ID string `json:"id,omitempty"`

	// Message is the payload of TypeSend.
	Message *Message `json:"message,omitempty"`
	// Topic is the topic of TypeSubscribe and TypeUnsubscribe.
	Topic string `json:"topic,omitempty"`
	// MessageID is set on the TypeAck of a send: the id the message was
	// accepted under.
	MessageID string `json:"message_id,omitempty"`
	// Token is the access token of TypeAuth.
	Token string `json:"token,omitempty"`

	Upload      *Upload      `json:"upload,omitempty"`
	Extend      *Extend      `json:"extend,omitempty"`
	DeadLetter  *DeadLetter  `json:"dead_letter,omitempty"`
	Hello       *Hello       `json:"hello,omitempty"`
	Delivery    *Delivery    `json:"delivery,omitempty"`
	QueueAccess *QueueAccess `json:"queue_access,omitempty"`
	Error       *Error       `json:"error,omitempty"`
}

// Message is a message a connector sends to the cloud.
type Message struct {
	// ID is the message id; the connector should set it (a UUID) so that a
	// send retried after a lost ack is recognised downstream as the same
	// message. The gateway assigns one when it is empty.
	ID string `json:"id,omitempty"`
	// CorrelationID links a reply to the request it answers.
	CorrelationID string `json:"correlation_id,omitempty"`
	// ReplyTo optionally names an application address for replies.
	ReplyTo string `json:"reply_to,omitempty"`
	// ContentType is the media type of Body.
	ContentType string `json:"content_type,omitempty"`
	// Headers are application headers. Identity headers are refused.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the payload (base64 in JSON).
	Body []byte `json:"body,omitempty"`
	// Claim refers to a body uploaded with TypeUpload, instead of Body.
	Claim *Claim `json:"claim,omitempty"`
	// Deadline makes the message a call to a cloud service, or a reply to
	// a call (with CorrelationID): the gateway carries it as the reserved
	// envelope.HeaderDeadline, which no application header may set.
	Deadline time.Time `json:"deadline,omitzero"`
	// DelayMillis schedules the message: the gateway puts it on the bus
	// deferred by this many milliseconds (bus.SendOptions.Delay).
	DelayMillis int64 `json:"delay_ms,omitempty"`
	// TTLMillis is the message's time to live from its delivery time; the
	// gateway carries the instant, by its own clock, as
	// envelope.HeaderExpiresAt.
	TTLMillis int64 `json:"ttl_ms,omitempty"`
	// ContentEncoding and Encryption say how Body was compressed and
	// encrypted (package payload); the gateway carries them as
	// envelope.HeaderContentEncoding and envelope.HeaderEncryption.
	ContentEncoding string `json:"content_encoding,omitempty"`
	Encryption      string `json:"encryption,omitempty"`
}

// Claim names an uploaded body: the blob from the upload reply, and the
// body's size and hex SHA-256, which the receiver verifies.
type Claim struct {
	Blob   string `json:"blob"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Upload is the reply to TypeUpload: where to PUT the body (write-only,
// short-lived) and the blob name to put in Message.Claim.
type Upload struct {
	Blob      string    `json:"blob"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	// MaxBytes is the largest body the gateway accepts this way.
	MaxBytes int64 `json:"max_bytes"`
}

// Hello is the gateway's greeting.
type Hello struct {
	Session   string `json:"session"`
	Tenant    string `json:"tenant"`
	Connector string `json:"connector"`
	// Queue is the name of the connector's Storage Queue.
	Queue string `json:"queue"`
	// PingIntervalSeconds is how often the gateway pings; a connector that
	// hears nothing for three intervals should reconnect.
	PingIntervalSeconds int `json:"ping_interval_seconds"`
	// MaxFrameBytes is the largest frame the gateway accepts.
	MaxFrameBytes int `json:"max_frame_bytes"`
}

// Delivery is the payload of TypeDeliver: a message on the connector's own
// queue, as a read of the queue would have returned it, hidden for
// VisibilitySeconds (the session's DeliverParam) from when the gateway put
// it there.
type Delivery struct {
	MessageID         string `json:"message_id"`
	PopReceipt        string `json:"pop_receipt"`
	Text              string `json:"text"`
	VisibilitySeconds int    `json:"visibility_seconds"`
}

// QueueAccess is a short-lived, read/process-only SAS URL of the
// connector's own queue.
type QueueAccess struct {
	Queue     string    `json:"queue"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Extend is the payload of TypeExtend: the request names the message and
// the visibility wanted, and repeats the message text (the storage service
// rewrites the text on every update, so it must be sent back unchanged);
// the reply carries the new pop receipt and when the message becomes
// visible again. Visibility 0 (or absent) releases the message: it is
// visible again at once.
type Extend struct {
	MessageID         string    `json:"message_id"`
	PopReceipt        string    `json:"pop_receipt"`
	Text              string    `json:"text,omitempty"`
	VisibilitySeconds int       `json:"visibility_seconds,omitempty"`
	NextVisible       time.Time `json:"next_visible,omitzero"`
}

// DeadLetter is the payload of TypeDeadLetter.
type DeadLetter struct {
	// Reason is a short machine-readable reason ("undecodable", "poison",
	// "handler-failed").
	Reason string `json:"reason"`
	// Description says what happened, for an operator.
	Description string `json:"description,omitempty"`
	// MessageID is the queue message id, or the envelope id when known.
	MessageID string `json:"message_id,omitempty"`
	// DequeueCount is how often the queue handed the message out.
	DequeueCount int `json:"dequeue_count,omitempty"`
	// Text is the message as it was on the queue.
	Text string `json:"text"`
}

// Error describes a failure.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Decode parses one frame and checks the fields its type requires.
func Decode(data []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return Frame{}, &Error{Code: CodeBadFrame, Message: fmt.Sprintf("cannot decode frame: %v", err)}
	}
	if f.Type == "" {
		return f, &Error{Code: CodeBadFrame, Message: "frame has no type"}
	}
	return f, nil
}

// Encode renders a frame.
func Encode(f Frame) ([]byte, error) {
	data, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s frame: %w", f.Type, err)
	}
	return data, nil
}

// ErrorFrame builds an error frame answering request id (empty for a frame
// that could not be read).
func ErrorFrame(id, code, message string) Frame {
	return Frame{Type: TypeError, ID: id, Error: &Error{Code: code, Message: message}}
}
