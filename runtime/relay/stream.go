package relay

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// stream is a relayed WebSocket as a net.Conn whose read deadlines behave
// like a TCP socket's: an expired deadline fails the waiting Read and
// nothing else. websocket.NetConn instead closes the whole WebSocket when a
// deadline fires mid-read, which breaks http.Server: it interrupts its
// background read with a past deadline on every hijack (WebSocket
// upgrades) and on keep-alive transitions. A goroutine reads the socket
// without deadlines; Read waits for its chunks under the deadline.
type stream struct {
	ws     *websocket.Conn
	nc     net.Conn // websocket.NetConn: writes, close, the pump's reads
	chunks chan *[]byte
	closed chan struct{}
	once   sync.Once

	readMu  sync.Mutex
	pending []byte
	buf     *[]byte // backing pending, back to the pool once drained
	rerr    error   // why the stream ended; set before chunks is closed

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced on every SetReadDeadline
}

// chunkPool holds read buffers the size of the 64 KiB writes senders make.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// streamKeepAlive is how often an idle-or-not relayed stream is pinged, so
// the relay and middleboxes keep it (idle sockets are dropped after about
// 4 minutes) and a dead peer is noticed. A test hook changes it.
var streamKeepAlive = 30 * time.Second

func newStream(ws *websocket.Conn) *stream {
	s := &stream{
		ws:      ws,
		nc:      websocket.NetConn(context.Background(), ws, websocket.MessageBinary),
		chunks:  make(chan *[]byte, 2), // read ahead a little
		closed:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	go s.pump()
	go s.keepAlive(streamKeepAlive)
	return s
}

// keepAlive pings until the stream closes; a ping unanswered within the
// interval closes the stream, so Read and Write fail instead of hanging.
func (s *stream) keepAlive(every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closed
		cancel()
	}()
	if pingUntilDead(ctx, s.ws, every, every) != nil {
		_ = s.Close()
	}
}

func (s *stream) pump() {
	defer close(s.chunks)
	for {
		bp := chunkPool.Get().(*[]byte)
		n, err := s.nc.Read(*bp)
		if n > 0 {
			b := (*bp)[:n]
			select {
			case s.chunks <- &b:
			case <-s.closed:
				return
			}
		} else {
			chunkPool.Put(bp)
		}
		if err != nil {
			s.rerr = err
			return
		}
	}
}

func (s *stream) Read(p []byte) (int, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for len(s.pending) == 0 {
		if s.buf != nil {
			*s.buf = (*s.buf)[:cap(*s.buf)]
			chunkPool.Put(s.buf)
			s.buf = nil
		}
		s.mu.Lock()
		deadline, changed := s.deadline, s.changed
		s.mu.Unlock()
		var expired <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(wait)
			expired = timer.C
		}
		select {
		case b, ok := <-s.chunks:
			if !ok {
				stopTimer(timer)
				return 0, s.rerr
			}
			s.pending, s.buf = *b, b
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-changed:
		case <-s.closed:
			stopTimer(timer)
			return 0, net.ErrClosed
		}
		stopTimer(timer)
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (s *stream) Write(p []byte) (int, error) { return s.nc.Write(p) }

func (s *stream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.nc.Close()
}

func (s *stream) LocalAddr() net.Addr  { return s.nc.LocalAddr() }
func (s *stream) RemoteAddr() net.Addr { return s.nc.RemoteAddr() }

func (s *stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds writes; as with TCP, a write that times out
// leaves the stream unusable (websocket.NetConn closes it).
func (s *stream) SetWriteDeadline(t time.Time) error { return s.nc.SetWriteDeadline(t) }

func (s *stream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}
