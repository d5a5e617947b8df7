package gatewayserver

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/sessionproto"
)

// cloudSender puts connector messages on the cloud queue with the verified
// identity stamped as From.
type cloudSender struct {
	bus    bus.Driver
	claims claimStore        // nil: no uploads
	key    *ecdsa.PrivateKey // nil: envelopes are not signed
	// late counts replies discarded because the calling instance's reply
	// queue is gone (nil: not counted).
	late interface{ Inc() }
	log  *slog.Logger // nil: slog.Default()
}

// send signs env when the gateway has a key and puts it on queue.
func (s *cloudSender) send(ctx context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error {
	if s.key != nil {
		if err := env.Sign(s.key); err != nil {
			return err
		}
	}
	return s.bus.Send(ctx, queue, env, opts)
}

// claimStore is what the gateway needs of the claim check store for uploads.
type claimStore interface {
	Container() string
	MaxBodyBytes() int64
	UploadURL(ctx context.Context, blobName string, ttl time.Duration) (string, time.Time, error)
}

// uploadTTL is how long an upload URL is valid.
const uploadTTL = 15 * time.Minute

// uploadPrefix is the folder of id's uploads in the claim container: a
// connector may only reference blobs below its own.
func uploadPrefix(id session.Identity) (string, error) {
	q, err := queuename.For(id)
	if err != nil {
		return "", err
	}
	return "uploads/" + q + "/", nil
}

// uploads hands connectors write-only URLs for large bodies.
type uploads struct {
	claims claimStore
}

func (u *uploads) UploadURL(ctx context.Context, id session.Identity) (sessionproto.Upload, error) {
	prefix, err := uploadPrefix(id)
	if err != nil {
		return sessionproto.Upload{}, err
	}
	blob := prefix + envelope.NewID()
	url, exp, err := u.claims.UploadURL(ctx, blob, uploadTTL)
	if err != nil {
		return sessionproto.Upload{}, err
	}
	return sessionproto.Upload{Blob: blob, URL: url, ExpiresAt: exp, MaxBytes: u.claims.MaxBodyBytes()}, nil
}

// claim turns a connector's claim into an envelope claim, refusing blobs
// that are not the connector's own uploads.
func (s *cloudSender) claim(from session.Identity, c *sessionproto.Claim) (*envelope.Claim, error) {
	if s.claims == nil {
		return nil, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: "this gateway takes no uploads"}
	}
	prefix, err := uploadPrefix(from)
	if err != nil {
		return nil, err
	}
	name, ok := strings.CutPrefix(c.Blob, prefix)
	if !ok || name == "" || strings.ContainsAny(name, "/\\") || strings.Contains(name, "..") {
		return nil, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: fmt.Sprintf("claim blob %q is not one of this connector's uploads", c.Blob)}
	}
	if c.Size < 0 || c.Size > s.claims.MaxBodyBytes() {
		return nil, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: fmt.Sprintf("claim size %d is outside 0..%d", c.Size, s.claims.MaxBodyBytes())}
	}
	return &envelope.Claim{Container: s.claims.Container(), Blob: c.Blob, Size: c.Size, SHA256: c.SHA256}, nil
}

// MaxConnectorDelay bounds a connector's scheduled send on every bus (the
// Storage Queue limit, storagequeue.MaxDelay): a scheduled message sits
// invisible, and on Service Bus uncancellable, in the bote-cloud queue that
// all tenants share, so a connector may not park messages there for
// longer.
const MaxConnectorDelay = storagequeue.MaxDelay

// maxMillis is the most milliseconds a time.Duration holds.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

// checkSchedule refuses a frame's delay over MaxConnectorDelay and a time
// to live a time.Duration cannot hold (it wrapped around to a short one).
func checkSchedule(m sessionproto.Message) error {
	switch {
	case m.DelayMillis > MaxConnectorDelay.Milliseconds():
		return fmt.Errorf("delay_ms %d is over the Storage Queue limit of %s, which holds for a connector's send on every bus: %w", m.DelayMillis, MaxConnectorDelay, bus.ErrDelayTooLong)
	case m.TTLMillis > maxMillis:
		return fmt.Errorf("ttl_ms %d is over the limit of %d", m.TTLMillis, maxMillis)
	}
	return nil
}

// replyGrace is how long a reply on a reply queue outlives its call's
// deadline (clock skew between the gateway and the caller).
const replyGrace = time.Minute

func (s *cloudSender) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}

func (s *cloudSender) SendToCloud(ctx context.Context, from session.Identity, m sessionproto.Message) (string, error) {
	id := m.ID
	if id == "" {
		id = envelope.NewID()
	}
	now := time.Now().UTC()
	if err := checkSchedule(m); err != nil {
		return "", &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: err.Error()}
	}
	delay, expires, err := envelope.Schedule(time.Time{}, time.Duration(m.DelayMillis)*time.Millisecond, time.Duration(m.TTLMillis)*time.Millisecond, now)
	if err != nil {
		return "", &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: err.Error()}
	}
	env := &envelope.Envelope{
		ID: id, CorrelationID: m.CorrelationID, ReplyTo: m.ReplyTo, Kind: envelope.KindCloud,
		From:    &envelope.Identity{Tenant: string(from.Tenant), Connector: from.Connector},
		Headers: m.Headers, ContentType: m.ContentType, Body: m.Body, CreatedAt: now,
	}
	// Set by the gateway from the frame's fields, after the session refused
	// every reserved application header.
	env.SetProtocolHeader(envelope.HeaderDeadline, m.Deadline)
	env.SetProtocolHeader(envelope.HeaderExpiresAt, expires)
	env.SetProtocolValue(envelope.HeaderContentEncoding, m.ContentEncoding)
	env.SetProtocolValue(envelope.HeaderEncryption, m.Encryption)
	queue, opts := bus.QueueCloud, &bus.SendOptions{Delay: delay}
	if q, ok := bus.ReplyQueueOf(m.CorrelationID); ok && !m.Deadline.IsZero() {
		// A reply to a call made with an instance's address: to that
		// instance's own queue, never created here, and only until the
		// caller gives up (a crashed caller's queue empties itself).
		queue, opts.MustExist = q, true
		opts.TTL = max(time.Until(m.Deadline), 0) + replyGrace
	}
	if m.Claim != nil {
		c, err := s.claim(from, m.Claim)
		if err != nil {
			return "", err
		}
		env.Claim = c
	}
	if err := env.Validate(); err != nil {
		return "", &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: err.Error()}
	}
	if err := s.send(ctx, queue, env, opts); err != nil {
		if errors.Is(err, bus.ErrNoQueue) {
			// The caller's Run ended (its queue goes with it): nobody
			// waits for this reply. Accepted and discarded, like a reply
			// past its deadline.
			if s.late != nil {
				s.late.Inc()
			}
			s.logger().InfoContext(ctx, "late reply discarded: the calling instance's reply queue is gone",
				"id", id, "correlation", m.CorrelationID, "queue", queue, "from", from.String())
			return id, nil
		}
		if errors.Is(err, bus.ErrTooLarge) || errors.Is(err, bus.ErrDelayTooLong) {
			return "", &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: err.Error()}
		}
		return "", err
	}
	return id, nil
}

func (s *cloudSender) DeadLetter(ctx context.Context, from session.Identity, d sessionproto.DeadLetter) error {
	queue, err := queuename.For(from)
	if err != nil {
		return err
	}
	env := &envelope.Envelope{
		ID: envelope.NewID(), Kind: envelope.KindCloud,
		From: &envelope.Identity{Tenant: string(from.Tenant), Connector: from.Connector},
		Headers: map[string]string{
			envelope.HeaderDeadLetter: d.Reason,
			"bote-source-queue":       queue,
			"bote-queue-message-id":   d.MessageID,
			"bote-dequeue-count":      fmt.Sprint(d.DequeueCount),
			"bote-description":        truncate(d.Description, 2048),
		},
		ContentType: "text/plain", Body: []byte(d.Text), CreatedAt: time.Now().UTC(),
	}
	if err := s.send(ctx, QueueConnectorErrors, env, nil); err != nil {
		return fmt.Errorf("cannot record dead letter from %s: %w", from, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
