package drift_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/drift"
)

// TestMissedTicksFireOnce: every server was down for ten of a schedule's
// times; the first scheduler back checks once, and the next check is the
// schedule's first time after that, not a backlog.
func TestMissedTicksFireOnce(t *testing.T) {
	for _, sch := range []drift.Schedule{{Every: time.Hour}, {Cron: "@hourly"}} {
		t.Run(sch.String(), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			s := e.scheduler(t)
			_, err := s.SetSchedule(ctx, "contoso", "prod", sch)
			require.NoError(t, err)

			e.advance(10*time.Hour + 30*time.Minute) // all down
			back := e.scheduler(t)                   // a server starts: Run fires at once
			n, err := back.FireDue(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "ten missed times: one check")
			require.Len(t, e.queued(t), 1)
			st, err := back.Get(ctx, "contoso", "prod")
			require.NoError(t, err)
			assert.Equal(t, sch.Next(e.clock()), st.Next, "the next time is after now")
			assert.True(t, st.Next.After(e.clock()))
			n, err = back.FireDue(ctx)
			require.NoError(t, err)
			assert.Zero(t, n, "no backlog")
			assert.Len(t, e.queued(t), 1)
		})
	}
}
