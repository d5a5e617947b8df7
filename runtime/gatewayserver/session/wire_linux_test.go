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

// A closed session's descriptor number taken by the next connection is
// that session's alone: the old session's poller registration is gone
// with it, and the new session is woken for each of its own frames.
func TestDescriptorReused(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = time.Hour })
	require.NotNil(t, h.srv.poller)
	session := func(connector string) *conn {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return h.srv.sessions[Identity{Tenant: "acme", Connector: connector}][0]
	}
	fdOf := func(c *conn) (fd int) {
		require.NoError(t, c.wire.raw.Control(func(f uintptr) { fd = int(f) }))
		return fd
	}
	parked := func(c *conn) {
		require.Eventually(t, func() bool { return c.reading.Load() == readParked }, 20*time.Second, time.Millisecond)
	}
	a := h.dialRaw(t, "tok-acme-a")
	old := session("a")
	parked(old)
	fd := fdOf(old)
	require.NoError(t, a.conn.Close())
	require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, time.Millisecond)

	var b *rawClient
	var reused *conn
	for i := 0; i < 20 && reused == nil; i++ {
		name := "b" + strconv.Itoa(i)
		r := h.dialRaw(t, "tok-acme-"+name)
		if c := session(name); fdOf(c) == fd {
			b, reused = r, c
		}
	}
	require.NotNil(t, reused, "no new connection took descriptor %d", fd)
	h.srv.poller.mu.Lock()
	_, stale := h.srv.poller.conns[old.token]
	h.srv.poller.mu.Unlock()
	assert.False(t, stale, "the closed session's registration is gone")
	assert.NotEqual(t, old.token, reused.token)
	for j := range 20 {
		parked(reused)
		id := strconv.Itoa(j)
		b.write(sendFrame(id))
		b.expectAck(id)
	}
}
