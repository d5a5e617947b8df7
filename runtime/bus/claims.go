package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
)

// Encode is for drivers: it encodes env for a transport whose messages hold
// at most limit bytes. A body that does not fit moves to claims (when not
// nil) and the envelope carries the claim instead. An envelope that already
// carries a claim (a received claim-checked message being forwarded, whose
// Body was resolved) travels with the claim only, so a broadcast shares one
// blob.
func Encode(ctx context.Context, env *envelope.Envelope, limit int, claims *claimcheck.Store) ([]byte, error) {
	if env != nil && env.Claim != nil && len(env.Body) > 0 {
		c := *env
		c.Body = nil
		env = &c
	}
	enc, err := envelope.Encode(env)
	if err != nil {
		return nil, err
	}
	if len(enc) <= limit {
		return enc, nil
	}
	if claims == nil || env.Claim != nil {
		return nil, fmt.Errorf("%w: %d bytes encoded, the limit is %d and no claim store is configured", ErrTooLarge, len(enc), limit)
	}
	claim, err := claims.Put(ctx, env.Body, env.ContentType)
	if err != nil {
		if errors.Is(err, claimcheck.ErrBodyTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, err
	}
	c := *env
	c.Body, c.Claim = nil, claim
	if enc, err = envelope.Encode(&c); err != nil {
		return nil, err
	}
	if len(enc) > limit {
		return nil, fmt.Errorf("%w: %d bytes encoded without the body (headers too large)", ErrTooLarge, len(enc))
	}
	return enc, nil
}

// ResolveClaim is for drivers: it fetches the body of a claim-checked
// envelope into env.Body (keeping env.Claim). permanent reports an error
// that will not go away (blob gone, corrupt, foreign, too large): such a
// message belongs in the error queue. Without a store, or without a claim,
// it does nothing.
func ResolveClaim(ctx context.Context, env *envelope.Envelope, claims *claimcheck.Store) (permanent bool, err error) {
	if env.Claim == nil || claims == nil {
		return false, nil
	}
	body, err := claims.Fetch(ctx, env.Claim)
	switch {
	case errors.Is(err, claimcheck.ErrNotFound), errors.Is(err, claimcheck.ErrCorrupt),
		errors.Is(err, claimcheck.ErrForeignClaim), errors.Is(err, claimcheck.ErrBodyTooLarge):
		return true, err
	case err != nil:
		return false, err
	}
	env.Body = body
	return false, nil
}

// MaxDescription bounds dead-letter descriptions (Service Bus keeps 4096
// characters of ErrorDescription).
const MaxDescription = 4096

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Reasons drivers give when they dead-letter a message on receipt.
const (
	ReasonUndecodable = "undecodable"
	ReasonPoison      = "poison"
	ReasonClaimCheck  = "claim check failed"
)

// Accept is for drivers: it screens a received message before it is handed
// out. It decodes m.Raw when m.Envelope is nil, then dead-letters (through
// d) an undecodable message, one delivered more than maxDeliveries times,
// or one whose claim can never be resolved, and resolves the claim of the
// rest. It returns true when m may be handed out; false with a nil error
// when m was dead-lettered; false with the error when resolving the claim
// failed transiently (the driver decides how the message comes back).
func Accept(ctx context.Context, d Driver, m *Message, maxDeliveries int, claims *claimcheck.Store, log *slog.Logger) (bool, error) {
	reason, desc := "", ""
	if m.Envelope == nil {
		env, err := envelope.Decode(m.Raw)
		if err != nil {
			reason, desc = ReasonUndecodable, err.Error()
		}
		m.Envelope = env
	}
	if reason == "" && m.DeliveryCount > maxDeliveries {
		reason, desc = ReasonPoison, fmt.Sprintf("delivered %d times, the limit is %d", m.DeliveryCount, maxDeliveries)
	}
	if reason == "" {
		permanent, err := ResolveClaim(ctx, m.Envelope, claims)
		switch {
		case permanent:
			reason, desc = ReasonClaimCheck, err.Error()
		case err != nil:
			return false, fmt.Errorf("cannot resolve claim check of %s: %w", m.Envelope.ID, err)
		default:
			return true, nil
		}
	}
	log.WarnContext(ctx, "dead-lettering message on receipt", "queue", m.Queue, "reason", reason, "description", desc, "deliveries", m.DeliveryCount)
	if err := d.DeadLetter(ctx, m, reason, desc); err != nil {
		// It stays in the queue and is screened the same way next time.
		log.ErrorContext(ctx, "cannot dead-letter message", "queue", m.Queue, "reason", reason, "err", err)
	}
	return false, nil
}
