package session

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/sessionproto"
)

// A client of another WebSocket implementation (gorilla/websocket) is
// served as our own connector is: its messages in one frame or in hundreds
// of fragments with pings between them are read, the gateway's pings while
// the session is idle are answered, and its close is echoed.
func TestGorillaClient(t *testing.T) {
	readModes(t, func(t *testing.T, h *harness) {
		d := gorilla.Dialer{Subprotocols: []string{sessionproto.Subprotocol}, WriteBufferSize: 256, HandshakeTimeout: 10 * time.Second}
		ws, resp, err := d.Dial("ws"+strings.TrimPrefix(h.http.URL, "http")+sessionproto.ConnectPath, http.Header{"Authorization": {"Bearer tok-acme-gorilla"}})
		require.NoError(t, err)
		_ = resp.Body.Close()
		t.Cleanup(func() { _ = ws.Close() })
		require.Equal(t, sessionproto.Subprotocol, ws.Subprotocol())

		var pings, pongs atomic.Int32
		ws.SetPingHandler(func(data string) error {
			pings.Add(1)
			return ws.WriteControl(gorilla.PongMessage, []byte(data), time.Now().Add(10*time.Second))
		})
		ws.SetPongHandler(func(string) error { pongs.Add(1); return nil })
		frames := make(chan sessionproto.Frame, 64)
		closed := make(chan error, 1)
		go func() {
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					closed <- err
					return
				}
				f, err := sessionproto.Decode(data)
				if assert.NoError(t, err) {
					frames <- f
				}
			}
		}()
		next := func() sessionproto.Frame {
			t.Helper()
			select {
			case f := <-frames:
				return f
			case err := <-closed:
				t.Fatalf("session ended: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("no frame from the gateway")
			}
			return sessionproto.Frame{}
		}
		require.Equal(t, sessionproto.TypeHello, next().Type)

		// One frame each, then 100 KB in 256-byte fragments with a ping
		// between some of them.
		for i := range 5 {
			require.NoError(t, ws.WriteMessage(gorilla.TextMessage, sendOfSize(strconv.Itoa(i), 100)))
		}
		w, err := ws.NextWriter(gorilla.TextMessage)
		require.NoError(t, err)
		const pingsBetween = 10
		for i, b := range chunk(sendOfSize("big", 100_000), 1000) {
			_, err := w.Write(b)
			require.NoError(t, err)
			if i%10 == 0 { // the buffer went out in fragments: this ping comes between two
				require.NoError(t, ws.WriteControl(gorilla.PingMessage, []byte("c"), time.Now().Add(10*time.Second)))
			}
		}
		require.NoError(t, w.Close())
		acks := map[string]bool{}
		for range 6 {
			f := next()
			require.Equal(t, sessionproto.TypeAck, f.Type, "%+v", f)
			acks[f.ID] = true
		}
		assert.Len(t, acks, 6)
		require.Eventually(t, func() bool { return pongs.Load() == pingsBetween }, 20*time.Second, 10*time.Millisecond, "the client's pings are answered")

		// Over MaxFrameBytes: refused, the session goes on.
		require.NoError(t, ws.WriteMessage(gorilla.TextMessage, sendOfSize("huge", sessionproto.MaxFrameBytes+1)))
		f := next()
		require.Equal(t, sessionproto.TypeError, f.Type)
		assert.Equal(t, sessionproto.CodeFrameTooLarge, f.Error.Code)

		// Idle through pings, then a request.
		seen := pings.Load()
		require.Eventually(t, func() bool { return pings.Load() >= seen+5 }, 20*time.Second, 10*time.Millisecond)
		require.NoError(t, ws.WriteMessage(gorilla.TextMessage, sendOfSize("late", 100)))
		assert.Equal(t, "late", next().ID)

		require.NoError(t, ws.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "bye"), time.Now().Add(10*time.Second)))
		select {
		case err := <-closed:
			var ce *gorilla.CloseError
			require.True(t, errors.As(err, &ce), "err %v", err)
			assert.Equal(t, gorilla.CloseNormalClosure, ce.Code, "the gateway echoes the close")
		case <-time.After(20 * time.Second):
			t.Fatal("the gateway did not answer the close")
		}
		require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, 10*time.Millisecond)
	}, func(c *Config) { c.PingInterval = 30 * time.Millisecond })
}

// chunk cuts b into pieces of n bytes.
func chunk(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}
