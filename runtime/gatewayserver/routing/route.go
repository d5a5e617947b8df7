package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/retry"
)

// permanent is an error that dead-letters the message at once with reason.
func permanent(reason, format string, args ...any) error {
	return &retry.PermanentError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// verifySender re-derives who sent env: a cloud service (allowed by
// Config.Services when set) that used no reserved header.
func (r *Router) verifySender(env *envelope.Envelope) error {
	switch {
	case env.From == nil:
		return permanent(ReasonUnverifiedSender, "from is empty: a message to connectors must name the cloud service that sent it")
	case !env.From.IsService():
		return permanent(ReasonUnverifiedSender, "from %q is not a cloud service: connector identities are stamped by the gateway, never accepted from the bus", env.From.String())
	case r.services != nil && !r.services[env.From.Service]:
		return permanent(ReasonUnverifiedSender, "from %q is not one of the cloud services allowed to send", env.From.Service)
	}
	if keys := r.cfg.ServiceKeys; len(keys) > 0 {
		pubs := keys[env.From.Service]
		if len(pubs) == 0 {
			return permanent(ReasonUnverifiedSender, "from %q holds no registered signing key", env.From.Service)
		}
		var err error
		for _, pub := range pubs {
			if err = env.VerifySignature(pub); err == nil {
				break
			}
		}
		if err != nil {
			return permanent(ReasonUnverifiedSender, "from %q: %w", env.From.Service, err)
		}
	}
	// botecloud adds the protocol headers (deadline, expiry) after
	// checking the application's; any other reserved name is forged.
	if err := envelope.CheckSentHeaders(env.Headers); err != nil {
		return permanent(ReasonReservedHeader, "%w", err)
	}
	return nil
}

func (r *Router) route(ctx context.Context, env *envelope.Envelope, log *slog.Logger) error {
	if env.Kind == envelope.KindTargeted || env.Kind == envelope.KindBroadcast {
		if err := r.verifySender(env); err != nil {
			return err
		}
	}
	// A call whose caller gave up, or a message past its time to live,
	// reaches no connector queue.
	if err := env.CheckExpired(time.Now()); err != nil {
		return permanent(ReasonExpired, "%w", err)
	}
	var targets []ids.ConnectorID
	switch env.Kind {
	case envelope.KindTargeted:
		id := ids.ConnectorID{Tenant: ids.TenantID(env.Tenant), Connector: env.Connector} // checked by envelope.Decode
		if d := r.cfg.Directory; d != nil && !d.Known(id) {
			return permanent(ReasonUnknownConnector, "connector %s is not registered", id)
		}
		targets = []ids.ConnectorID{id}
	case envelope.KindBroadcast:
		subs, err := r.cfg.Subscribers.Subscribers(ctx, env.Tenant, env.Topic)
		if err != nil {
			return err
		}
		for _, c := range subs {
			targets = append(targets, ids.ConnectorID{Tenant: ids.TenantID(env.Tenant), Connector: c})
		}
		if len(targets) == 0 {
			log.Info("broadcast has no subscribers", "topic", env.Topic)
			return nil
		}
	default:
		return permanent(ReasonUnroutable, "kind %q cannot be routed to connectors (tenant and connector, or tenant and topic, are required)", env.Kind)
	}
	text, err := r.encode(ctx, env)
	if err != nil {
		return err
	}
	return r.deliver(ctx, env, targets, text)
}

// encode renders env for a connector queue, moving the body to Blob storage
// when it does not fit.
func (r *Router) encode(ctx context.Context, env *envelope.Envelope) (string, error) {
	out := env.Clone()
	if out.Claim != nil {
		out.Body = nil // forwarded claim: the connector fetches it by URL
	}
	enc, err := envelope.Encode(out)
	if err != nil {
		return "", permanent(ReasonUnroutable, "cannot encode: %w", err)
	}
	fits := envelope.Fits(enc)
	switch {
	case fits && out.Claim == nil:
		return string(enc), nil
	case r.cfg.Claims == nil && fits && out.Claim.URL != "":
		return string(enc), nil // forwarded claim, URL as the sender signed it
	case r.cfg.Claims == nil:
		return "", permanent(ReasonTooLarge, "%d bytes encoded, the limit is %d and no claim store is configured", len(enc), envelope.MaxQueueMessageBytes)
	}
	if out.Claim == nil {
		if out.Claim, err = r.cfg.Claims.Put(ctx, env.Body, env.ContentType); err != nil {
			if errors.Is(err, claimcheck.ErrBodyTooLarge) {
				return "", permanent(ReasonTooLarge, "%w", err)
			}
			return "", fmt.Errorf("cannot claim-check body: %w", err)
		}
		out.Body = nil
	}
	// The URL must outlive the message's wait in the connector's queue.
	if err := r.cfg.Claims.Sign(ctx, out.Claim, r.cfg.ClaimURLTTL); err != nil {
		return "", fmt.Errorf("cannot sign claim URL: %w", err)
	}
	if enc, err = envelope.Encode(out); err != nil {
		return "", permanent(ReasonUnroutable, "cannot encode: %w", err)
	}
	if !envelope.Fits(enc) {
		return "", permanent(ReasonTooLarge, "%d bytes encoded without the body (headers too large)", len(enc))
	}
	return string(enc), nil
}

// deliver enqueues text on every target not yet reached, in parallel
// within the router-wide fan-out bound.
func (r *Router) deliver(ctx context.Context, env *envelope.Envelope, targets []ids.ConnectorID, text string) error {
	kind := string(env.Kind)
	sem := r.fanOut
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, id := range targets {
		key := env.ID + "\x00" + string(id.Tenant) + "\x00" + id.Connector
		if r.seen.Has(key) {
			r.m.Duplicates.Inc()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.put(ctx, id, text); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			r.seen.Add(key)
			r.m.Routed.WithLabelValues(kind).Inc()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// enqueue runs put (one enqueue), retrying it at once up to
// ImmediateRetries times.
func (r *Router) enqueue(ctx context.Context, put func() error) error {
	var err error
	for attempt := 0; ; attempt++ {
		if err = put(); err == nil {
			return nil
		}
		if attempt >= r.cfg.ImmediateRetries || ctx.Err() != nil {
			return err
		}
		r.m.Retries.WithLabelValues("immediate").Inc()
		_ = r.sleep(ctx, time.Duration(50<<attempt)*time.Millisecond)
	}
}
