package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSleep(t *testing.T) {
	assert.NoError(t, Sleep(context.Background(), time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	assert.Less(t, time.Since(start), time.Minute, "an ended context ends the wait")
}

func TestPermanent(t *testing.T) {
	cause := errors.New("no such connector")
	tests := []struct {
		name      string
		err       error
		permanent bool
		msg       string
	}{
		{"plain", cause, false, "no such connector"},
		{"marked", Permanent(cause), true, "no such connector"},
		{"wrapped after marking", fmt.Errorf("route: %w", Permanent(cause)), true, "route: no such connector"},
		{"with a reason", &PermanentError{Reason: "unknown-connector", Err: cause}, true, "unknown-connector: no such connector"},
		{"nil", Permanent(nil), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.permanent, IsPermanent(tt.err))
			if tt.err != nil {
				assert.Equal(t, tt.msg, tt.err.Error())
				assert.ErrorIs(t, tt.err, cause, "the cause stays reachable")
			}
		})
	}
}

func TestBackoffIsFullJitterWithinBounds(t *testing.T) {
	for attempt := range 40 {
		d := Backoff(100*time.Millisecond, 10*time.Second, attempt)
		ceiling := min(100*time.Millisecond<<min(attempt, 30), 10*time.Second)
		if attempt > 30 {
			ceiling = 10 * time.Second
		}
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.LessOrEqual(t, d, ceiling)
	}
}
