package session

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
)

// How an idle session waits without a goroutine of its own.
//
// The WebSocket library (coder/websocket) reads through a blocking call
// that returns only once a data message has arrived; it answers pings,
// takes pongs and closes on the way. A goroutine blocked in it costs about
// 8 KiB of stack per idle session. Instead the library reads from a wire:
// the hijacked connection whose Read hands over what has arrived, one frame
// at a time, and tells the session's reader when nothing more has. The
// reader then parks the session with the poller (epoll on Linux) and its
// goroutine ends; once the socket is readable the poller starts a new one.
//
// To make the library return at such a point without closing the
// connection, the wire hands it a synthetic frame there: an empty, masked
// binary message, which the library reads like any other and the session's
// reader recognises and drops. It is only ever handed at a message
// boundary (never between the fragments of a message), so the library's
// state and everything it writes to the connector are as if the frame had
// never been there. Everything the connector sent before it (pongs, pings,
// a close) has been handled by the library by then.
//
// The wire hands the library no more than the rest of the frame it is in,
// so the library's own read buffer never holds bytes of a frame it has not
// started: what has arrived and is not yet handled is always in the wire.
//
// All reads of the wire happen under the library's read lock (one reader
// at a time: the session's reader, or Close waiting for the connector's
// close frame), so the wire's read state needs no lock of its own.
type wire struct {
	net.Conn
	raw syscall.RawConn // non-blocking reads; nil: every read blocks
	c   *conn

	// Read state, under the library's read lock.
	buf       []byte // what has arrived: buf[off:] is not handed over yet
	off       int
	frameLeft int64 // bytes of the current frame still to hand over; 0 between frames
	inMessage bool  // between the fragments of a message
	synthLeft int   // bytes of the synthetic frame still to hand over
	err       error // the connection's read error, once seen

	// parkable is parkOn while the session's reader may be handed a
	// synthetic frame instead of waiting. It becomes parkNever before
	// anyone else (Close) reads, and never goes back on: a session's start
	// that enables parking after its close began must not make Close's
	// reads take synthetic frames for messages, drop them and read again,
	// in a loop until the connector's close came.
	parkable atomic.Int32
	// synthetic is set when a synthetic frame has been handed over and
	// not yet taken by the session's reader.
	synthetic atomic.Bool
}

// Parking states (wire.parkable).
const (
	parkOff   = iota // not yet
	parkOn           // the session's reader may park
	parkNever        // closing, or no poller for this socket: reads wait
)

// allowParking lets the session's reader park, unless it never may.
func (w *wire) allowParking() { w.parkable.CompareAndSwap(parkOff, parkOn) }

// stopParking makes every read from now on wait for the connection.
func (w *wire) stopParking() { w.parkable.Store(parkNever) }

// synthFrame is the synthetic frame: FIN and binary, masked (as the
// library requires of a client), no payload, mask key 0.
var synthFrame = [...]byte{0x82, 0x80, 0, 0, 0, 0}

// wireBufSize is the size of the buffer a wire reads the socket into. It is
// taken from a pool for a read and given back once handed over, so an idle
// session keeps none.
const wireBufSize = 4096

var wireBufs = sync.Pool{New: func() any { b := make([]byte, wireBufSize); return &b }}

// Read hands over the rest of the current frame, or the next frame once
// its header has arrived. Between messages, with nothing more arrived, it
// hands the session's reader the synthetic frame if the wire is parkable,
// and otherwise waits for the connection.
func (w *wire) Read(p []byte) (int, error) {
	for {
		if w.synthLeft > 0 {
			n := copy(p, synthFrame[len(synthFrame)-w.synthLeft:])
			w.synthLeft -= n
			return n, nil
		}
		pending := w.buf[w.off:]
		if w.frameLeft > 0 && len(pending) > 0 {
			n := copy(p[:min(int64(len(p)), w.frameLeft)], pending)
			w.frameLeft -= int64(n)
			w.consume(n)
			return n, nil
		}
		if w.frameLeft == 0 && len(pending) > 0 {
			if size, ok := w.nextFrame(pending); ok {
				w.frameLeft = size
				continue
			}
		}
		if w.err != nil {
			if len(pending) > 0 { // a frame cut short: the library sees it end
				w.frameLeft = int64(len(pending))
				continue
			}
			return 0, w.err
		}
		if w.frameLeft == 0 && !w.inMessage && w.raw != nil && w.parkable.Load() == parkOn {
			got, err := w.readNow()
			if err != nil {
				w.err = err
				continue
			}
			if got {
				continue
			}
			// Nothing more has arrived: the session's reader gets the
			// synthetic frame and parks.
			w.synthetic.Store(true)
			w.synthLeft = len(synthFrame)
			w.release()
			continue
		}
		if err := w.readWait(); err != nil {
			w.err = err
		}
	}
}

// nextFrame parses the header of the frame at the start of b and returns
// the frame's size, header included; false if the header has not all
// arrived. It tracks whether the frames after it continue a message.
// Frames the library refuses (it closes the connection) need no care: a
// size that does not fit is cut to the largest.
func (w *wire) nextFrame(b []byte) (int64, bool) {
	if len(b) < 2 {
		return 0, false
	}
	hlen := 2
	if b[1]&0x80 != 0 {
		hlen += 4
	}
	plen := uint64(b[1] & 0x7f)
	switch plen {
	case 126:
		hlen += 2
		if len(b) < 4 {
			return 0, false
		}
		plen = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		hlen += 8
		if len(b) < 10 {
			return 0, false
		}
		plen = binary.BigEndian.Uint64(b[2:])
	}
	if len(b) < hlen {
		return 0, false
	}
	fin, op := b[0]&0x80 != 0, b[0]&0x0f
	if op < 0x8 { // a data frame (0 continuation, 1 text, 2 binary)
		w.inMessage = !fin
	}
	if plen > math.MaxInt64-uint64(hlen) {
		return math.MaxInt64, true
	}
	return int64(hlen) + int64(plen), true
}

func (w *wire) consume(n int) {
	w.off += n
	if w.off == len(w.buf) {
		w.release()
	}
}

// release gives the read buffer back to the pool once everything in it has
// been handed over; what is left (part of a frame header) is kept.
func (w *wire) release() {
	if w.buf == nil {
		return
	}
	pending := w.buf[w.off:]
	var kept []byte
	if len(pending) > 0 {
		kept = append([]byte(nil), pending...)
	}
	if cap(w.buf) == wireBufSize {
		full := w.buf[:wireBufSize]
		wireBufs.Put(&full)
	}
	w.buf, w.off = kept, 0
}

// space returns room to read into at the end of the read buffer.
func (w *wire) space() []byte {
	if cap(w.buf) != wireBufSize {
		pooled := (*wireBufs.Get().(*[]byte))[:0]
		pooled = append(pooled, w.buf[w.off:]...)
		w.buf, w.off = pooled, 0
	}
	if w.off > 0 && len(w.buf) == cap(w.buf) {
		n := copy(w.buf, w.buf[w.off:])
		w.buf, w.off = w.buf[:n], 0
	}
	return w.buf[len(w.buf):cap(w.buf)]
}

// readWait waits for the connection and appends what it reads.
func (w *wire) readWait() error {
	space := w.space()
	n, err := w.Conn.Read(space)
	w.buf = w.buf[:len(w.buf)+n]
	if n == 0 && w.off == len(w.buf) {
		w.release()
	}
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readNow appends what has arrived without waiting, and reports whether
// anything had.
func (w *wire) readNow() (bool, error) {
	space := w.space()
	n, err := readNonBlocking(w.raw, space)
	if n > 0 {
		w.buf = w.buf[:len(w.buf)+n]
		return true, nil
	}
	if w.off == len(w.buf) {
		w.release()
	}
	return false, err
}

// takeSynthetic reports whether the message the library returned is the
// synthetic frame.
func (w *wire) takeSynthetic() bool { return w.synthetic.Swap(false) }

// Close closes the connection and, if the session is parked, starts its
// reader so that it sees the close and ends the session: a closed socket
// never becomes readable for the poller.
func (w *wire) Close() error {
	err := w.Conn.Close()
	w.c.wake()
	return err
}

var errNoPoller = errors.New("no poller")

// sessionBufferSize is the size of a session's write buffer. A frame header
// fits many times over; larger writes bypass a bufio buffer anyway.
const sessionBufferSize = 512

// hijacker hands the WebSocket library the session's wire for the hijacked
// connection, with a write buffer of sessionBufferSize instead of
// net/http's 4 KiB one and a read buffer of bufio's smallest: the wire
// hands over at most a frame at a time, and whatever has arrived stays in
// the wire only until it is handed over.
type hijacker struct {
	http.ResponseWriter
	c *conn
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w := &h.c.wire
	w.Conn, w.c = conn, h.c
	if sc, ok := conn.(syscall.Conn); ok { // not TLS: its records need the blocking reader
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	// Bytes the connector sent right after its request (its first frames)
	// are already in net/http's buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		w.buf = append([]byte(nil), early...)
	}
	return w, bufio.NewReadWriter(bufio.NewReaderSize(w, 16), bufio.NewWriterSize(conn, sessionBufferSize)), nil
}
