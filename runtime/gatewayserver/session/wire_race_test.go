package session

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/sessionproto"
)

// Requests that arrive just as the session parks (right after the answer
// to the last one went out, or a moment later) are all read: the socket
// becoming readable while it is being handed to the poller wakes it. No
// pings here: a pong would wake a session whose wake-up was lost.
func TestNoWakeUpLost(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		const sessions, requests = 32, 150
		var wg sync.WaitGroup
		for i := range sessions {
			c := h.dialRaw(t, "tok-acme-w"+strconv.Itoa(i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range requests {
					if j%3 != 0 { // at once, or within the time it takes to park
						time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
					}
					id := strconv.Itoa(j)
					if _, err := c.conn.Write(sendFrame(id)); !assert.NoError(t, err) {
						return
					}
					c.expectAck(id) // waits 10 s: a lost wake-up never answers
				}
			}()
		}
		wg.Wait()
		assert.Len(t, h.sender.all(), sessions*requests)
	}, func(c *Config) { c.PingInterval = time.Hour })
}

// A connector that sends part of a frame and then nothing (no pong either)
// is closed once its ping goes unanswered, like any silent connector;
// while it waits, a session cut inside a frame header holds no goroutine
// where there is a poller.
func TestPartialFrameThenSilence(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		send := sendFrame("1")
		cuts := map[string]int{"one byte": 1, "a header without its mask": 2, "a header without its last mask byte": 5, "part of the payload": 10}
		var wg sync.WaitGroup
		for name, n := range cuts {
			c := h.dialRaw(t, "tok-acme-"+strconv.Itoa(n))
			c.write(send[:n])
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.Equal(t, "close:1008 EOF", c.transcript(), name)
			}()
		}
		wg.Wait()
		require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, 10*time.Millisecond)
		assert.Empty(t, h.sender.all())
	}, func(c *Config) {
		// The connector never answers the gateway's close either: the
		// close handshake ends at CloseTimeout, not the library's 5 s.
		c.PingInterval, c.WriteTimeout, c.CloseTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	})
}

// settledGoroutines counts goroutines once short-lived ones have ended.
func settledGoroutines() int {
	var n int
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		n = runtime.NumGoroutine()
	}
	return n
}

// goroutinesFallUnder waits until fewer than limit goroutines are left,
// and returns how many there were last.
func goroutinesFallUnder(t *testing.T, limit int) int {
	t.Helper()
	var n int
	assert.Eventually(t, func() bool {
		runtime.GC()
		n = runtime.NumGoroutine()
		return n < limit
	}, 20*time.Second, 20*time.Millisecond)
	return n
}

// Shutdown with 2,000 parked sessions closes every one with 1001: those
// that answer the close and those that never do (some cut in the middle
// of a frame header), and lets go of every goroutine.
func TestShutdownWithThousandsParked(t *testing.T) {
	// Those that never answer hold the shutdown until CloseTimeout.
	h := newHarness(t, func(c *Config) { c.PingInterval, c.CloseTimeout = time.Hour, 500*time.Millisecond })
	if h.srv.poller == nil {
		t.Skip("no poller on this system")
	}
	before := settledGoroutines()
	const sessions = 2000
	clients := make([]*rawClient, sessions)
	for i := range clients {
		clients[i] = h.dialRaw(t, "tok-acme-s"+strconv.Itoa(i))
		if i%4 == 1 {
			clients[i].write(sendFrame("x")[:3])
		}
	}
	parked := goroutinesFallUnder(t, before+100)
	t.Logf("%d goroutines before, %d with %d parked sessions", before, parked, sessions)
	assert.Less(t, parked-before, 100)

	var wg sync.WaitGroup
	for i, c := range clients {
		if i%2 == 1 {
			continue // never answers
		}
		wg.Add(1)
		go func() { // answers the close
			defer wg.Done()
			op, payload := c.readFrame()
			if assert.Equal(t, byte(opClose), op) {
				assert.Equal(t, uint16(1001), binary.BigEndian.Uint16(payload))
				_, _ = c.conn.Write(frame(opClose, true, payload[:2]))
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, h.srv.Shutdown(ctx))
	t.Logf("shut down in %s", time.Since(start))
	wg.Wait()
	assert.Zero(t, h.srv.Sessions())
	for _, c := range clients {
		_ = c.conn.Close()
	}
	after := goroutinesFallUnder(t, before+20)
	assert.Less(t, after-before, 20, "every session's goroutines returned")
}

// A session closed by the gateway (evicted, shut down) while it is being
// started reads the connector's last frames, up to its close, with
// Close's reads waiting for them: it is not handed the synthetic frame
// there (Close would take it for a message, drop it and ask again, in a
// loop until the connector's close came) even if the start enables
// parking after the close began.
func TestCloseBeforeParkingIsEnabled(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = time.Hour })
	if h.srv.poller == nil {
		t.Skip("no poller on this system")
	}
	r := h.dialRaw(t, "tok-acme-late")
	h.srv.mu.Lock()
	c := h.srv.sessions[Identity{Tenant: "acme", Connector: "late"}][0]
	h.srv.mu.Unlock()
	require.Eventually(t, func() bool { return c.reading.Load() == readParked }, 20*time.Second, time.Millisecond)
	c.wire.parkable.Store(parkOff) // as before start enabled it
	closed := make(chan struct{})
	go func() { defer close(closed); c.close(4000, "evicted") }()
	op, _ := r.readFrame()
	require.Equal(t, byte(opClose), op)
	c.wire.allowParking() // start's last step, after the close began

	r.write(frame(opPong, true, []byte("p"))) // Close reads it and reads on
	time.Sleep(200 * time.Millisecond)
	assert.False(t, c.wire.synthetic.Load(), "Close was handed the synthetic frame")
	r.write(frame(opClose, true, closePayload(4000, "")))
	<-closed
	require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, 10*time.Millisecond)
}

// Between the fragments of a message a connector can still answer pings
// (control frames may come between fragments), so a session left there
// stays open, read by a goroutine that waits for the rest: it cannot park,
// since the synthetic frame would end the message. What it keeps is what
// every idle session kept before parking; the message, once finished, is
// handled.
func TestBetweenFragmentsAnsweringPings(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		c := h.dialRaw(t, "tok-acme-frag")
		msg := sendOfSize("1", 80)
		c.write(frame(opText, false, msg[:30]))
		for range 5 {
			op, payload := c.readFrame()
			require.Equal(t, byte(opPing), op)
			c.write(frame(opPong, true, payload))
		}
		h.srv.mu.Lock()
		s := h.srv.sessions[Identity{Tenant: "acme", Connector: "frag"}][0]
		h.srv.mu.Unlock()
		assert.Equal(t, int32(readRunning), s.reading.Load(), "the session waits for the rest of its message")
		c.write(frame(opContinuation, true, msg[30:]))
		for {
			op, payload := c.readFrame()
			if op == opPing {
				c.write(frame(opPong, true, payload))
				continue
			}
			f, err := sessionproto.Decode(payload)
			require.NoError(t, err)
			assert.Equal(t, sessionproto.TypeAck, f.Type)
			assert.Equal(t, "1", f.ID)
			return
		}
	}, func(c *Config) { c.PingInterval = 30 * time.Millisecond })
}
