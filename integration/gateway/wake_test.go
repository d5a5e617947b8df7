package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
)

// A cloud send wakes the router (botecloud.Config.WakeURL → the gateway's
// route wake endpoint): with an hour-long route poll, an idle platform
// still delivers at once.
func TestSendWakesTheRouterDespiteALongPoll(t *testing.T) {
	g := newGateway(t, "--route-poll-max", "1h")
	svc := g.cloud("waker", nil)
	a1 := g.connector("tenant-a", "a1")
	time.Sleep(3 * time.Second) // the route poll has backed off past a second
	for range 3 {
		start := time.Now()
		id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("now")})
		require.NoError(t, err)
		require.Equal(t, id, a1.next(t, 10*time.Second).ID)
		assert.Less(t, time.Since(start), time.Second)
		time.Sleep(2 * time.Second)
	}
}
