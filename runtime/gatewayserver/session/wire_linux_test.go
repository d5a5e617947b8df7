package session

import (
	"net"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
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
	before := settledGoroutines()
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
	after := goroutinesFallUnder(t, before+50)
	require.Equal(t, sessions, h.srv.Sessions())
	t.Logf("%d goroutines before, %d with %d idle sessions", before, after, sessions)
	assert.Less(t, after-before, 50)

	// Every session ends (its descriptor closed) before the next test:
	// TestDescriptorReused needs descriptor numbers that do not move
	// under it.
	for _, c := range clients {
		_ = c.ws.CloseNow()
	}
	require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, 10*time.Millisecond)
}

// gatedListener accepts a connection only once the test lets it.
type gatedListener struct {
	net.Listener
	gate   chan struct{}
	closed chan struct{}
	once   *sync.Once
}

func (l gatedListener) Accept() (net.Conn, error) {
	select {
	case <-l.gate:
	case <-l.closed:
	}
	return l.Listener.Accept()
}

func (l gatedListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// A closed session's descriptor number taken by the next connection is
// that session's alone: the old session's poller registration is gone
// with it, and the new session is woken for each of its own frames.
func TestDescriptorReused(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = time.Hour })
	require.NotNil(t, h.srv.poller)
	gate := make(chan struct{}, 2)
	hs := httptest.NewUnstartedServer(h.srv)
	hs.Listener = gatedListener{hs.Listener, gate, make(chan struct{}), new(sync.Once)}
	hs.Start()
	t.Cleanup(hs.Close)
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
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", hs.Listener.Addr().String())
		require.NoError(t, err)
		return conn
	}

	gate <- struct{}{}
	a := handshakeRaw(t, dial(), "tok-acme-a")
	old := session("a")
	parked(old)
	fd := fdOf(old)
	require.NoError(t, a.conn.Close())
	require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, time.Millisecond)

	// The lowest free number goes to the next socket: hold every free one
	// up to fd, dial (our socket takes a higher one), give fd back and
	// only then let the gateway accept.
	var held []*os.File
	t.Cleanup(func() {
		for _, f := range held {
			_ = f.Close()
		}
	})
	for {
		f, err := os.Open(os.DevNull)
		require.NoError(t, err)
		if int(f.Fd()) == fd {
			conn := dial()
			require.NoError(t, f.Close())
			gate <- struct{}{}
			b := handshakeRaw(t, conn, "tok-acme-b")
			reused := session("b")
			require.Equal(t, fd, fdOf(reused), "the new session has the old one's descriptor")
			for j := range 20 {
				parked(reused)
				id := strconv.Itoa(j)
				b.write(sendFrame(id))
				b.expectAck(id)
			}
			parked(reused) // registered: its token is set
			h.srv.poller.mu.Lock()
			_, stale := h.srv.poller.conns[old.token]
			h.srv.poller.mu.Unlock()
			assert.False(t, stale, "the closed session's registration is gone")
			assert.NotEqual(t, old.token, reused.token)
			return
		}
		require.Less(t, int(f.Fd()), fd, "descriptor %d was taken meanwhile", fd)
		held = append(held, f)
	}
}
