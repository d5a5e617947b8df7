package main

import (
	"net"
	"os"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/relay"
)

// streamListener wraps the relay listener so that relayed streams support
// read deadlines the way http.Server uses them.
//
// Why: when a handler hijacks a connection (every WebSocket upgrade, such as
// /v1/events), http.Server interrupts its own background read by setting a
// read deadline in the past, then clears it. The relay's streams are
// websocket.NetConn underneath, where a deadline that fires during a read
// cancels the read context for good and closes the WebSocket, so the
// upgraded connection dies at once. deadlineConn reads the stream in its
// own goroutine and applies deadlines to the wait, never to the stream. It
// belongs in package relay; until it moves there, relayserver wraps the
// streams itself.
type streamListener struct{ net.Listener }

func (l streamListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if rc, ok := c.(*relay.Conn); ok {
		return newDeadlineConn(rc), nil
	}
	return c, nil
}

// deadlineConn is a net.Conn whose read deadlines interrupt only the
// waiting Read; data that arrives later is kept for the next Read.
type deadlineConn struct {
	net.Conn

	chunks chan []byte   // filled by pump; closed when the stream ends
	closed chan struct{} // closed by Close
	once   sync.Once

	readMu  sync.Mutex // serializes Reads
	pending []byte
	err     error // why the stream ended, valid once chunks is closed

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced when the deadline changes
}

func newDeadlineConn(c net.Conn) *deadlineConn {
	d := &deadlineConn{Conn: c, chunks: make(chan []byte), closed: make(chan struct{}), changed: make(chan struct{})}
	go d.pump()
	return d
}

func (d *deadlineConn) pump() {
	defer close(d.chunks)
	for {
		b := make([]byte, 32<<10)
		n, err := d.Conn.Read(b)
		if n > 0 {
			select {
			case d.chunks <- b[:n]:
			case <-d.closed:
				return
			}
		}
		if err != nil {
			d.err = err
			return
		}
	}
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.readMu.Lock()
	defer d.readMu.Unlock()
	for len(d.pending) == 0 {
		d.mu.Lock()
		deadline, changed := d.deadline, d.changed
		d.mu.Unlock()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			expired = t.C
		}
		select {
		case b, ok := <-d.chunks:
			if !ok {
				return 0, d.err
			}
			d.pending = b
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-changed:
		case <-d.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadline = t
	close(d.changed)
	d.changed = make(chan struct{})
	return nil
}

func (d *deadlineConn) SetDeadline(t time.Time) error {
	_ = d.SetReadDeadline(t)
	return d.Conn.SetWriteDeadline(t)
}

func (d *deadlineConn) Close() error {
	d.once.Do(func() { close(d.closed) })
	return d.Conn.Close()
}
