package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
)

// A cloud send wakes the router (botecloud.Config.WakeURL → the gateway's
// route wake endpoint): with a long route poll, an idle platform still
// delivers at once. The router waits --route-poll-min (5 s here, growing
// to an hour) after every receive that found the queue empty or nearly
// so, at start and after each message it routes: without the wake each
// message below would wait about 5 s for the next poll. (It runs alone,
// not in parallel, for its bound on the delivery time.)
func TestSendWakesTheRouterDespiteALongPoll(t *testing.T) {
	g := newGateway(t, "--route-poll-min", "5s", "--route-poll-max", "1h")
	svc := g.cloud("waker", nil)
	a1 := g.connector("tenant-a", "a1")
	for range 3 {
		start := time.Now()
		id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("now")})
		require.NoError(t, err)
		require.Equal(t, id, a1.next(t, 10*time.Second).ID)
		assert.Less(t, time.Since(start), time.Second)
	}
}
