// Package retry holds what the runtime's retry loops share: a wait that
// ends early when the context does, the jittered exponential delay between
// attempts, and the mark on an error that says retrying cannot help (the
// message goes to the error queue at once).
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is the delay before retry attempt+1 (attempt counts from 0):
// "full jitter", uniform in [0, min(limit, base×2^attempt)], so that
// clients that failed together do not return together.
func Backoff(base, limit time.Duration, attempt int) time.Duration {
	ceiling := base << min(max(attempt, 0), 30)
	if ceiling <= 0 || ceiling > limit {
		ceiling = limit
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Sleep waits d or until ctx ends, whichever is first, and returns
// ctx.Err() in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PermanentError is an error retrying cannot fix. Reason, if set, is a
// short machine-readable cause (an error queue's dead-letter reason).
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
