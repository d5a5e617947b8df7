package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/sessionproto"
)

// conn is one session.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	id     Identity
	queue  string
	seq    uint64 // order of arrival on this server
	name   string
	remote string

	nudging atomic.Int32 // nudgeIdle, nudgeWriting or nudgeAgain
	// deliver is how long messages delivered to this session stay hidden
	// (the connector's DeliverParam), 0 for none; deliveries are sent
	// once helloed, the hello being the first frame.
	deliver  time.Duration
	helloed  atomic.Bool
	done     chan struct{}
	slots    chan struct{} // bounds requests in flight
	inflight sync.WaitGroup
	leaving  atomic.Bool
	awayOnce sync.Once
	awayMu   sync.Mutex   // orders inflight.Add before goAway's Wait
	expires  atomic.Int64 // token expiry, unix nanoseconds; 0 means none
	// closedWith is the close code the gateway sent, 0 if it did not close.
	closedWith atomic.Int32

	wire    wire            // the connection as the WebSocket library reads it
	reading atomic.Int32    // readNotStarted, readRunning or readParked
	token   int32           // the session's poller registration, 0 before
	ctx     context.Context // not cancelled: the session's end is done
	pinger  *time.Timer
}

func (c *conn) log() *slog.Logger {
	return c.srv.log.With("session", c.name, "tenant", c.id.Tenant, "connector", c.id.Connector)
}

// open logs the session and records its presence. It runs on the HTTP
// handler's goroutine, which ends right after: the deep call stack of the
// storage client does not stay with the session's reader.
func (c *conn) open(ctx context.Context) {
	c.log().Info("session opened", "remote", c.remote)
	if p := c.srv.cfg.Presence; p != nil {
		if err := p.Join(ctx, c.id, c.name); err != nil {
			// Nudges from other replicas may miss this session; the
			// connector's safety poll still delivers. Worth a warning.
			c.log().Warn("cannot record presence", "err", err)
		}
	}
}

// start writes the hello, starts the pings and the session's reader.
func (c *conn) start(ctx context.Context) {
	c.ctx = ctx
	hello := sessionproto.Frame{Type: sessionproto.TypeHello, Hello: &sessionproto.Hello{
		Session: c.name, Tenant: string(c.id.Tenant), Connector: c.id.Connector, Queue: c.queue,
		PingIntervalSeconds: int(c.srv.cfg.PingInterval / time.Second), MaxFrameBytes: sessionproto.MaxFrameBytes,
	}}
	if err := c.write(c.ctx, hello); err != nil {
		c.log().Info("session closed before hello", "err", err)
		c.finish()
		return
	}
	c.helloed.Store(true)
	if !c.nudging.CompareAndSwap(nudgeWriting, nudgeIdle) { // nudged before the hello
		c.nudging.Store(nudgeWriting)
		go c.writeNudges()
	}
	c.keepalive()
	if c.srv.poller != nil && c.wire.raw != nil {
		c.wire.allowParking()
	}
	c.reading.Store(readRunning)
	go c.read()
}

// Reader states (conn.reading).
const (
	readNotStarted = iota
	readRunning    // a goroutine reads the session
	readParked     // no goroutine: the poller wakes the session
)

// wake starts a reader for a parked session: its socket became readable
// or its connection was closed.
func (c *conn) wake() {
	if c.reading.CompareAndSwap(readParked, readRunning) {
		go c.read()
	}
}

// park hands the session to the poller. It reports whether the caller's
// reader is to end; false: the session cannot be parked and the caller
// goes on reading, waiting in its reads.
func (c *conn) park() bool {
	c.srv.poller.register(c) // before anyone else may take the session over
	c.reading.Store(readParked)
	if err := c.srv.poller.arm(c); err == nil {
		return true
	}
	if !c.reading.CompareAndSwap(readParked, readRunning) {
		return true // closed meanwhile, and woken: another reader ends the session
	}
	// Closed (the next read says so) or no epoll for this socket.
	c.wire.stopParking()
	return false
}

// end ends the session once its reader has stopped with err.
func (c *conn) end(err error) {
	c.inflight.Wait()
	log := c.log()
	switch status := websocket.CloseStatus(err); {
	case c.closedWith.Load() != 0: // we closed it; the read may fail either way
		log.Info("session closed", "status", c.closedWith.Load(), "by", "gateway")
	case status == websocket.StatusNormalClosure, status == websocket.StatusGoingAway:
		log.Info("session closed", "status", int(status), "by", "connector")
	default:
		log.Info("session ended", "err", err)
	}
	_ = c.ws.CloseNow()
	c.finish()
}

// finish clears the session's presence and takes it off the server.
func (c *conn) finish() {
	if p := c.srv.cfg.Presence; p != nil {
		lctx, lcancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
		if err := p.Leave(lctx, c.id, c.name); err != nil {
			c.log().Warn("cannot clear presence", "err", err)
		}
		lcancel()
	}
	close(c.done)
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.srv.poller.forget(c)
	c.srv.remove(c)
}

// close ends the session with code; the first code given is logged.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closedWith.CompareAndSwap(0, int32(code))
	// Close reads until the connector's close frame: it must wait for it
	// rather than be handed a synthetic frame.
	c.wire.stopParking()
	if d := c.srv.cfg.CloseTimeout; d > 0 {
		// Only the wait for the connector's close frame is cut short:
		// the gateway's own close frame is written whatever the deadline.
		_ = c.wire.Conn.SetReadDeadline(time.Now().Add(d))
	}
	_ = c.ws.Close(code, reason)
}

// keepalive pings well under any ingress idle timeout, on a timer rather
// than a goroutine of its own. Each tick runs on a short-lived goroutine of
// its own, which waits for the pong.
func (c *conn) keepalive() {
	c.pinger = time.AfterFunc(math.MaxInt64, func() {
		if c.tick(c.ctx) && !c.over() {
			c.pinger.Reset(c.srv.cfg.PingInterval)
		}
	})
	// Started once c.pinger is set, which the first tick may read: set
	// after AfterFunc with the interval, a tick due before the assignment
	// (a short interval, a loaded machine) would find it unset.
	c.pinger.Reset(c.srv.cfg.PingInterval)
}

// over reports whether the session has ended.
func (c *conn) over() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// tick checks that the session may go on and pings; it reports whether it
// did go on.
func (c *conn) tick(ctx context.Context) bool {
	if d := c.srv.cfg.Directory; d != nil && !d.Active(c.id) {
		c.srv.log.Warn("audit: session_revoked", "audit", true, "event", "session_revoked", "tenant", c.id.Tenant, "connector", c.id.Connector, "session", c.name)
		c.close(sessionproto.CloseRevoked, "connector is no longer registered or is disabled")
		return false
	}
	if exp := c.expires.Load(); exp != 0 && time.Now().UnixNano() > exp {
		c.log().Info("access token expired; closing session")
		c.close(sessionproto.CloseTokenExpired, "access token expired; reconnect with a fresh token")
		return false
	}
	// The pong is read by the read loop, which pauses while the session has
	// MaxInFlight requests open: allow a whole interval.
	pctx, cancel := context.WithTimeout(ctx, max(c.srv.cfg.PingInterval, c.srv.cfg.WriteTimeout))
	err := c.ws.Ping(pctx)
	cancel()
	if err != nil && !c.over() {
		c.log().Info("connector missed ping; closing session", "err", err)
		c.close(websocket.StatusPolicyViolation, "ping timeout")
		return false
	}
	return err == nil
}

// Nudge states (conn.nudging).
const (
	nudgeIdle    = iota
	nudgeWriting // a goroutine is writing a nudge frame
	nudgeAgain   // ... and another nudge came meanwhile: one more frame
)

// nudge tells the connector it has messages. It never blocks (routing must
// not wait on a connector's socket) and coalesces: while a nudge frame is
// being written, any number of nudges make one more frame.
func (c *conn) nudge() {
	for {
		switch c.nudging.Load() {
		case nudgeIdle:
			if c.nudging.CompareAndSwap(nudgeIdle, nudgeWriting) {
				go c.writeNudges()
				return
			}
		case nudgeWriting:
			if c.nudging.CompareAndSwap(nudgeWriting, nudgeAgain) {
				return
			}
		default:
			return
		}
	}
}

func (c *conn) writeNudges() {
	for {
		select {
		case <-c.done:
			c.nudging.Store(nudgeIdle)
			return
		default:
		}
		// Bounded by WriteTimeout, and ended by the session's close.
		if err := c.write(context.Background(), sessionproto.Frame{Type: sessionproto.TypeNudge}); err != nil {
			c.log().Debug("cannot write nudge", "err", err)
		}
		if c.nudging.CompareAndSwap(nudgeWriting, nudgeIdle) {
			return
		}
		c.nudging.Store(nudgeWriting) // was nudgeAgain
	}
}

// goAway refuses new requests, waits for those in flight and closes with
// 1001 so the connector reconnects to another replica at once.
func (c *conn) goAway() {
	c.awayOnce.Do(func() {
		c.awayMu.Lock()
		c.leaving.Store(true)
		c.awayMu.Unlock()
		c.inflight.Wait()
		c.close(websocket.StatusGoingAway, "gateway shutting down")
	})
}

// read reads and handles the connector's frames until nothing more has
// arrived, then parks the session and ends; or until the session ends.
func (c *conn) read() {
	ctx := c.ctx
	for {
		typ, r, err := c.ws.Reader(ctx)
		if err != nil {
			c.end(err)
			return
		}
		if c.wire.takeSynthetic() { // nothing more has arrived
			if c.park() {
				return
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(r, sessionproto.MaxFrameBytes+1))
		if err != nil {
			c.end(err)
			return
		}
		if len(data) > sessionproto.MaxFrameBytes {
			// Skip the rest; past HardFrameLimit the library closes with 1009.
			if _, err := io.Copy(io.Discard, r); err != nil {
				c.end(err)
				return
			}
			c.reject(ctx, "", sessionproto.CodeFrameTooLarge, fmt.Sprintf("frame exceeds %d bytes; nothing in it was processed", sessionproto.MaxFrameBytes))
			continue
		}
		if typ != websocket.MessageText {
			c.reject(ctx, "", sessionproto.CodeBadFrame, "frames are JSON text messages")
			continue
		}
		f, err := sessionproto.Decode(data)
		if err != nil {
			var perr *sessionproto.Error
			errors.As(err, &perr)
			c.reject(ctx, f.ID, perr.Code, perr.Message)
			continue
		}
		c.slots <- struct{}{} // beyond MaxInFlight, wait: stop reading
		// No request joins those in flight once goAway waits for them.
		c.awayMu.Lock()
		leaving := c.leaving.Load()
		if !leaving {
			c.inflight.Add(1)
		}
		c.awayMu.Unlock()
		if leaving {
			c.handle(ctx, f) // refused
			<-c.slots
			continue
		}
		go func() {
			defer func() { <-c.slots; c.inflight.Done() }()
			c.handle(ctx, f)
		}()
	}
}
