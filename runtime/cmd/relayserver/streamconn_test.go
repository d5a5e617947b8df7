package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wsPair returns both ends of a WebSocket as websocket.NetConn byte streams,
// which is what relayed streams are.
func wsPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	got := make(chan net.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		got <- websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	client = websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	t.Cleanup(func() { client.Close() })
	return <-got, client
}

// What http.Server does on Hijack: interrupt a blocked Read with a past
// deadline, clear it, and keep using the connection. Data must survive.
func TestDeadlineInterruptsOnlyTheWait(t *testing.T) {
	raw, peer := wsPair(t)
	c := newDeadlineConn(raw)
	defer c.Close()

	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		readErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c.SetReadDeadline(time.Unix(1, 0)))
	select {
	case err := <-readErr:
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "a timeout net.Error, as http.Server expects: %v", err)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline did not interrupt Read")
	}
	require.NoError(t, c.SetReadDeadline(time.Time{}))

	_, err := peer.Write([]byte("still here"))
	require.NoError(t, err)
	buf := make([]byte, 10)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(buf))

	// Writes go through untouched.
	_, err = c.Write([]byte("pong"))
	require.NoError(t, err)
	_, err = io.ReadFull(peer, buf[:4])
	require.NoError(t, err)
	assert.Equal(t, "pong", string(buf[:4]))
}

func TestDeadlineConnFutureDeadlineAndClose(t *testing.T) {
	raw, peer := wsPair(t)
	c := newDeadlineConn(raw)

	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)

	require.NoError(t, c.SetReadDeadline(time.Time{}))
	require.NoError(t, peer.Close())
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the peer's close ends the stream")
	_ = c.Close() // the WebSocket is already closed; Close may say so
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err)
}
