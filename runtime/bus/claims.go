package bus

import (
	"context"
	"errors"
	"fmt"

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
