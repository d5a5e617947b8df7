package session

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/sessionproto"
)

// WebSocket opcodes, for the raw client.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// rawClient speaks WebSocket byte by byte, so a test decides what goes in
// which TCP segment.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// readModes runs f with sessions parked by the poller when idle (where
// there is one) and with every session read by a goroutine of its own,
// on a server configured by opts. The two run in parallel, each on a
// server of its own.
func readModes(t *testing.T, f func(t *testing.T, h *harness), opts ...func(*Config)) {
	for _, mode := range []string{"poller", "goroutine"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, opts...)
			if mode == "goroutine" {
				// Served anew from here, so that what serves sessions sees
				// the poller gone (a client in another process, Node,
				// gives the race detector no other ordering).
				h.http.Close()
				h.srv.poller = nil
				h.http = httptest.NewServer(h.srv)
				t.Cleanup(h.http.Close)
			} else if h.srv.poller == nil {
				t.Skip("no poller on this system")
			}
			f(t, h)
		})
	}
}

// dialRaw opens a session by hand; early is sent in the same write as the
// request.
func (h *harness) dialRaw(t *testing.T, token string, early ...[]byte) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
	require.NoError(t, err)
	return handshakeRaw(t, conn, token, early...)
}

// handshakeRaw opens a session by hand on conn.
func handshakeRaw(t *testing.T, conn net.Conn, token string, early ...[]byte) *rawClient {
	t.Helper()
	t.Cleanup(func() { _ = conn.Close() })
	req := "GET " + sessionproto.ConnectPath + " HTTP/1.1\r\nHost: bote\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + sessionproto.Subprotocol + "\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	out := []byte(req)
	for _, e := range early {
		out = append(out, e...)
	}
	_, err := conn.Write(out)
	require.NoError(t, err)
	c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	op, payload := c.readFrame()
	require.Equal(t, byte(opText), op)
	assert.Contains(t, string(payload), `"hello"`)
	return c
}

// frame encodes a client frame (masked).
func frame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n < 1<<16:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := []byte{0x1f, 0x2e, 0x3d, 0x4c}
	out = append(out, key...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

func sendFrame(id string) []byte {
	return frame(opText, true, []byte(`{"type":"send","id":"`+id+`","message":{"id":"m-`+id+`"}}`))
}

// write sends b in the pieces given by cuts (offsets), each in a write of
// its own after a pause, so that they arrive in separate segments.
func (c *rawClient) write(b []byte, cuts ...int) {
	c.t.Helper()
	prev := 0
	for _, cut := range append(cuts, len(b)) {
		_, err := c.conn.Write(b[prev:cut])
		require.NoError(c.t, err)
		prev = cut
		if cut < len(b) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// readFrame reads one server frame (unmasked, unfragmented).
func (c *rawClient) readFrame() (byte, []byte) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	var hdr [2]byte
	_, err := io.ReadFull(c.br, hdr[:])
	require.NoError(c.t, err)
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		_, err = io.ReadFull(c.br, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		_, err = io.ReadFull(c.br, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	require.NoError(c.t, err)
	payload := make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	require.NoError(c.t, err)
	require.NotZero(c.t, hdr[0]&0x80, "server frames are not fragmented")
	return hdr[0] & 0x0f, payload
}

// expectAck reads the next frame and checks it is the ack of send id.
func (c *rawClient) expectAck(id string) {
	c.t.Helper()
	op, payload := c.readFrame()
	require.Equal(c.t, byte(opText), op, "payload %q", payload)
	f, err := sessionproto.Decode(payload)
	require.NoError(c.t, err)
	assert.Equal(c.t, sessionproto.TypeAck, f.Type)
	assert.Equal(c.t, id, f.ID)
	assert.Equal(c.t, "m-"+id, f.MessageID)
}

// Frames and pings that arrive together are all answered, in order, and
// nothing else is (no trace of how the gateway waits for the next ones).
func TestManyFramesInOneSegment(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		c := h.dialRaw(t, "tok-acme-agent1")
		var b []byte
		b = append(b, frame(opPing, true, []byte("p1"))...)
		b = append(b, sendFrame("1")...)
		b = append(b, sendFrame("2")...)
		b = append(b, frame(opPong, true, []byte("unsolicited"))...)
		b = append(b, sendFrame("3")...)
		b = append(b, frame(opPing, true, []byte("p2"))...)
		c.write(b)
		// The pings are answered by the reader as it reads; the sends are
		// handled concurrently (up to MaxInFlight), so acks come in any
		// order relative to each other.
		pongs, acks := 0, map[string]bool{}
		for range 5 {
			op, payload := c.readFrame()
			switch op {
			case opPong:
				pongs++
				assert.Equal(t, "p"+strconv.Itoa(pongs), string(payload))
			case opText:
				f, err := sessionproto.Decode(payload)
				require.NoError(t, err)
				require.Equal(t, sessionproto.TypeAck, f.Type, "payload %q", payload)
				acks[f.ID] = true
			default:
				t.Fatalf("unexpected frame %x %q", op, payload)
			}
		}
		assert.Equal(t, 2, pongs)
		assert.Equal(t, map[string]bool{"1": true, "2": true, "3": true}, acks)
		c.write(sendFrame("4"))
		c.expectAck("4")
		assert.Len(t, h.sender.all(), 4)
	})
}

// A frame cut anywhere (in its header, in its mask, in its payload) is read
// once the rest has arrived, as is a message in fragments with a ping
// between them.
func TestFrameSplitAcrossSegments(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		c := h.dialRaw(t, "tok-acme-agent1")
		c.write(sendFrame("1"), 1)
		c.expectAck("1")
		c.write(sendFrame("2"), 2, 4)
		c.expectAck("2")
		c.write(sendFrame("3"), 6, 20)
		c.expectAck("3")

		// 126-byte payload: a 16-bit length, cut inside it.
		long := frame(opText, true, []byte(`{"type":"send","id":"4","message":{"id":"m-4","body":"`+strings.Repeat("eA", 30)+`"}}`+strings.Repeat(" ", 126-82-8)))
		require.Equal(t, byte(0x80|126), long[1])
		c.write(long, 3, 5, 7)
		c.expectAck("4")

		msg := `{"type":"send","id":"5","message":{"id":"m-5"}}`
		var b []byte
		b = append(b, frame(opText, false, []byte(msg[:10]))...)
		ping := frame(opPing, true, []byte("mid"))
		b = append(b, ping...)
		cut := len(b)
		b = append(b, frame(opContinuation, false, []byte(msg[10:20]))...)
		b = append(b, frame(opContinuation, true, []byte(msg[20:]))...)
		c.write(b, cut, cut+3)
		op, payload := c.readFrame()
		assert.Equal(t, byte(opPong), op)
		assert.Equal(t, "mid", string(payload))
		c.expectAck("5")
	})
}

// Frames the connector sends right behind its request (before it has seen
// the response) are read.
func TestFramesSentWithTheRequest(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		c := h.dialRaw(t, "tok-acme-agent1", sendFrame("1"), sendFrame("2")[:3])
		c.expectAck("1")
		c.write(sendFrame("2")[3:])
		c.expectAck("2")
	})
}

// A session that stays idle through many pings (each answered while the
// gateway holds no reader for it) takes a request at once when it comes.
func TestSessionIdleForLongThenSends(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		h.srv.cfg.PingInterval = 20 * time.Millisecond
		var pings atomic.Int32
		ws, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(h.http.URL, "http"), &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer tok-acme-agent1"}}, Subprotocols: []string{sessionproto.Subprotocol},
			OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
		})
		require.NoError(t, err)
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		frames := make(chan sessionproto.Frame, 10)
		go func() { // answers the gateway's pings as it reads
			defer close(frames)
			for {
				_, data, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				f, _ := sessionproto.Decode(data)
				frames <- f
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// The gateway pings again only once its last ping was answered:
		// each ping after the first says the gateway took a pong.
		require.Eventually(t, func() bool { return pings.Load() >= 10 }, 20*time.Second, 10*time.Millisecond)
		for range 3 {
			require.NoError(t, ws.Ping(ctx), "the gateway answers the connector's pings while idle")
			time.Sleep(20 * time.Millisecond)
		}
		require.Equal(t, sessionproto.TypeHello, (<-frames).Type)
		data, err := sessionproto.Encode(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "late", Message: &sessionproto.Message{ID: "m-late"}})
		require.NoError(t, err)
		require.NoError(t, ws.Write(ctx, websocket.MessageText, data))
		select {
		case f := <-frames:
			assert.Equal(t, sessionproto.TypeAck, f.Type)
			assert.Equal(t, "m-late", f.MessageID)
		case <-ctx.Done():
			t.Fatal("no ack")
		}
		assert.Equal(t, 1, h.srv.Sessions())
	})
}

// An idle session closed by either side ends: the close handshake
// completes and the gateway lets go of it.
func TestCloseWhileIdle(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		gone := func() bool { return h.srv.Sessions() == 0 }

		c := h.dial(t, "tok-acme-agent1")
		time.Sleep(50 * time.Millisecond) // idle
		require.NoError(t, c.ws.Close(websocket.StatusNormalClosure, "bye"), "the gateway answers the close frame")
		require.Eventually(t, gone, 10*time.Second, 10*time.Millisecond)

		r := h.dialRaw(t, "tok-acme-agent2")
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, r.conn.Close(), "the connection drops without a close frame")
		require.Eventually(t, gone, 10*time.Second, 10*time.Millisecond)

		r = h.dialRaw(t, "tok-acme-agent3")
		time.Sleep(50 * time.Millisecond)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- h.srv.Shutdown(ctx)
		}()
		op, payload := r.readFrame()
		require.Equal(t, byte(opClose), op)
		assert.Equal(t, uint16(websocket.StatusGoingAway), binary.BigEndian.Uint16(payload))
		r.write(frame(opClose, true, payload[:2]))
		require.NoError(t, <-done, "the gateway read the close frame of an idle session")
		assert.True(t, gone())
	})
}

// Frames arriving while the gateway closes sessions (evicted by a newer
// one, or all at shutdown) do not upset it: every session ends, each is
// counted out once, and the race detector sees the reads and the closes.
func TestReadsRacingWithClose(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		h.srv.cfg.MaxSessionsPerConnector = 1
		const connectors, rounds = 8, 5
		var wg sync.WaitGroup
		for i := range connectors {
			wg.Add(1)
			go func() {
				defer wg.Done()
				token := "tok-acme-c" + strconv.Itoa(i)
				for range rounds { // each new session evicts the last while it is being written to
					ws, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(h.http.URL, "http"), &websocket.DialOptions{
						HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}, Subprotocols: []string{sessionproto.Subprotocol},
					})
					if !assert.NoError(t, err) {
						return
					}
					if resp.Body != nil {
						_ = resp.Body.Close()
					}
					go func() {
						for {
							if _, _, err := ws.Read(context.Background()); err != nil {
								return
							}
						}
					}()
					go func() {
						data, _ := sessionproto.Encode(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "s", Topic: "chat"})
						for j := 0; ; j++ {
							if ws.Write(context.Background(), websocket.MessageText, data) != nil {
								return
							}
							if j%4 == 0 {
								_ = ws.Ping(context.Background())
							}
							time.Sleep(time.Millisecond)
						}
					}()
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, h.srv.Shutdown(ctx))
		assert.Zero(t, h.srv.Sessions())
	})
}
