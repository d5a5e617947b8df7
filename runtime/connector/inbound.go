package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/payload"
)

// errFetch marks a claim-checked body that could not be fetched: worth
// another try, unlike a body that cannot be opened.
var errFetch = errors.New("cannot fetch claim-checked body")

// message is what the handler gets of env: the body fetched if it was
// claim-checked (an error wrapping errFetch when that fails), then
// decrypted and inflated (package payload; any error is final).
func (r *receiver) message(ctx context.Context, env *envelope.Envelope, count int) (*Message, error) {
	msg := &Message{
		ID: env.ID, CorrelationID: env.CorrelationID, ReplyTo: env.ReplyTo, Kind: env.Kind, Topic: env.Topic,
		Headers: envelope.ApplicationHeaders(env.Headers), ContentType: env.ContentType, Body: env.Body, DeliveryCount: count,
		Deadline: env.Deadline(), ExpiresAt: env.ExpiresAt(),
	}
	if env.From != nil {
		msg.From = *env.From
	}
	if env.Claim != nil {
		body, err := claimcheck.FetchURL(ctx, r.c.cfg.HTTPClient, env.Claim, r.c.cfg.MaxClaimBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errFetch, err)
		}
		msg.Body = body
	}
	var err error
	msg.Body, err = payload.DecodeEnvelope(&envelope.Envelope{ID: env.ID, Headers: env.Headers, Body: msg.Body},
		r.c.cfg.DecryptionKey, r.c.cfg.Tenant+"/"+r.c.cfg.Connector, r.c.cfg.MaxClaimBytes)
	return msg, err
}

// refusal returns why a message dequeued count times goes to the error
// queue instead of the handler: not addressed to this connector, poison,
// or expired (a late reply is not expired: it is discarded, see
// deliverReply). The error is nil when it may be handled.
func (c *Client) refusal(env *envelope.Envelope, count int) (string, error) {
	if reason, err := c.addressedToMe(env); err != nil {
		return reason, err
	}
	if count > c.cfg.MaxDequeueCount {
		return ReasonPoison, fmt.Errorf("dequeued %d times, the limit is %d", count, c.cfg.MaxDequeueCount)
	}
	if err := env.CheckExpired(time.Now()); err != nil && !env.IsReply() {
		c.calls.Expired.Add(1)
		return envelope.ReasonExpired, err
	}
	return "", nil
}

// addressedToMe checks what the gateway checked before routing, again, at
// the last hop: anyone with write access to the storage account can put a
// message on this connector's queue. A message reaches the handler only if
// it is addressed to this connector (targeted) or its tenant (broadcast),
// comes from a cloud service and carries no reserved header. It returns the
// dead-letter reason and why.
func (c *Client) addressedToMe(env *envelope.Envelope) (string, error) {
	switch {
	case env.Kind == envelope.KindTargeted && (env.Tenant != c.cfg.Tenant || env.Connector != c.cfg.Connector):
		return ReasonMisaddressed, fmt.Errorf("addressed to %s/%s, this is %s/%s", env.Tenant, env.Connector, c.cfg.Tenant, c.cfg.Connector)
	case env.Kind == envelope.KindBroadcast && env.Tenant != c.cfg.Tenant:
		return ReasonMisaddressed, fmt.Errorf("broadcast to tenant %s, this connector is in %s", env.Tenant, c.cfg.Tenant)
	case env.Kind != envelope.KindTargeted && env.Kind != envelope.KindBroadcast:
		return ReasonMisaddressed, fmt.Errorf("kind %q does not go to connectors", env.Kind)
	case env.From == nil || !env.From.IsService():
		var from string
		if env.From != nil {
			from = env.From.String()
		}
		return ReasonUnverifiedSender, fmt.Errorf("from %q is not a cloud service", from)
	}
	if err := envelope.CheckSentHeaders(env.Headers); err != nil {
		return ReasonUnverifiedSender, err
	}
	return "", nil
}
