package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/payload"
	"github.com/botehq/platform/runtime/sessionproto"
)

// OutMessage is a message to the cloud.
type OutMessage struct {
	// ID is the message id; Send generates one if empty. Retries reuse it,
	// so the cloud can deduplicate.
	ID            string
	CorrelationID string
	ReplyTo       string
	ContentType   string
	Headers       map[string]string
	Body          []byte
	// DeliverAt or Delay (not both) schedule the message: the cloud gets
	// it no earlier (the gateway defers it on the bus: Service Bus
	// scheduled messages, or a Storage Queue's visibility timeout, at most
	// 7 days).
	DeliverAt time.Time
	Delay     time.Duration
	// TTL, when set, is how long the message stays valid after its
	// delivery time: one not handled by then goes to the error queue with
	// reason "expired", never to a handler.
	TTL time.Duration
}

// roundUpMillis is d in whole milliseconds, rounded up so that a delay is
// never shortened.
func roundUpMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// MaxInlineBytes is the largest body Send puts in the session frame; a
// larger one is uploaded to Blob storage first (claim check) through a
// write-only URL from the gateway.
const MaxInlineBytes = 128 << 10

// Send sends m to the cloud and returns its id once the bus accepted it. It
// waits for a session, and if the session drops before the ack it sends
// again with the same id, until ctx ends. A refusal by the gateway (bad
// message, identity headers) is returned as a *sessionproto.Error.
func (c *Client) Send(ctx context.Context, m OutMessage) (string, error) {
	return c.send(ctx, m, time.Time{})
}

// send sends m with the call deadline deadline (zero: not a call).
func (c *Client) send(ctx context.Context, m OutMessage, deadline time.Time) (string, error) {
	if m.ID == "" {
		m.ID = envelope.NewID()
	}
	delay, _, err := envelope.Schedule(m.DeliverAt, m.Delay, m.TTL, time.Now())
	if err != nil {
		return "", &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: err.Error()}
	}
	e, err := payload.Encode(m.Body, payload.Options{CompressAbove: c.cfg.CompressAbove, To: c.cfg.CloudKey, MessageID: m.ID, Recipient: payload.CloudRecipient})
	if err != nil {
		return "", err
	}
	m.Body = e.Body
	msg := &sessionproto.Message{ID: m.ID, CorrelationID: m.CorrelationID, ReplyTo: m.ReplyTo, ContentType: m.ContentType, Headers: m.Headers, Body: m.Body,
		Deadline: deadline, DelayMillis: roundUpMillis(delay), TTLMillis: roundUpMillis(m.TTL),
		ContentEncoding: e.ContentEncoding, Encryption: e.Encryption}
	if len(m.Body) > MaxInlineBytes {
		claim, err := c.upload(ctx, m.Body, m.ContentType)
		if err != nil {
			return "", err
		}
		msg.Body, msg.Claim = nil, claim
	}
	reply, err := c.request(ctx, sessionproto.Frame{Type: sessionproto.TypeSend, Message: msg})
	if err != nil {
		return "", err
	}
	return reply.MessageID, nil
}

// upload puts body in Blob storage through a write-only URL from the gateway
// and returns the claim to send instead of the body.
func (c *Client) upload(ctx context.Context, body []byte, contentType string) (*sessionproto.Claim, error) {
	reply, err := c.request(ctx, sessionproto.Frame{Type: sessionproto.TypeUpload})
	if err != nil {
		return nil, err
	}
	u := reply.Upload
	if u == nil || u.URL == "" || u.Blob == "" {
		return nil, errors.New("cannot upload: the gateway sent no upload URL")
	}
	if u.MaxBytes > 0 && int64(len(body)) > u.MaxBytes {
		return nil, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: fmt.Sprintf("body of %d bytes exceeds the gateway's %d", len(body), u.MaxBytes)}
	}
	bc, err := blockblob.NewClientWithNoCredential(u.URL, &blockblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: c.cfg.HTTPClient}})
	if err != nil {
		return nil, fmt.Errorf("cannot use upload URL: %w", err)
	}
	opts := &blockblob.UploadBufferOptions{}
	if contentType != "" {
		opts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &contentType}
	}
	if _, err := bc.UploadBuffer(ctx, body, opts); err != nil {
		return nil, fmt.Errorf("cannot upload body: %w", err)
	}
	sum := sha256.Sum256(body)
	return &sessionproto.Claim{Blob: u.Blob, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}, nil
}
