package session

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/sessionproto"
)

// On Linux an idle session holds no goroutine: it waits in the poller.
// 1,000 idle sessions, each after a request and a nudge, add fewer than 50
// goroutines. (Pings are not sent here: these clients do not read, and a
// ping waits for its pong on a goroutine of its own.)
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = time.Hour })
	require.NotNil(t, h.srv.poller)
	settle := func() int {
		var n int
		for range 3 { // let short-lived goroutines (pings, nudges, net/http) end
			time.Sleep(100 * time.Millisecond)
			runtime.GC()
			n = runtime.NumGoroutine()
		}
		return n
	}
	before := settle()
	const sessions = 1000
	clients := make([]*client, sessions)
	for i := range clients {
		clients[i] = h.dial(t, "tok-acme-c"+strconv.Itoa(i))
	}
	for i, c := range clients { // each session handles a request and a nudge
		c.write(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "s", Topic: "chat"})
		assert.Equal(t, sessionproto.TypeAck, c.read().Type)
		h.srv.Nudge(Identity{Tenant: "acme", Connector: "c" + strconv.Itoa(i)})
		assert.Equal(t, sessionproto.TypeNudge, c.read().Type)
	}
	after := settle()
	require.Equal(t, sessions, h.srv.Sessions())
	t.Logf("%d goroutines before, %d with %d idle sessions", before, after, sessions)
	assert.Less(t, after-before, 50)
}
