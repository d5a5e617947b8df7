package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// control is one connected control channel.
type control struct {
	ws      *websocket.Conn
	writeMu sync.Mutex // a response frame and its body go out together
}

// send writes a JSON frame and, when body is not nil, a binary frame.
func (c *control) send(ctx context.Context, m wire.Message, body []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return wire.Write(ctx, c.ws, m, body)
}

// serveControl reads commands until the channel drops and says why.
func (l *Listener) serveControl(ws *websocket.Conn) error {
	ctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	c := &control{ws: ws}
	defer func() {
		l.mu.Lock()
		l.current = nil
		l.mu.Unlock()
		_ = ws.CloseNow()
	}()
	go l.renewTokens(ctx, c)
	if l.cfg.KeepAlive > 0 {
		go l.keepAlive(ctx, ws)
	}
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			return describeClose(err)
		}
		if typ != websocket.MessageText {
			l.log.Warn("ignoring unexpected binary frame on control channel", "bytes", len(data))
			continue
		}
		var m wire.Message
		if err := json.Unmarshal(data, &m); err != nil {
			l.log.Warn("ignoring malformed control message", "err", err)
			continue
		}
		switch {
		case m.Accept != nil:
			go l.accept(m.Accept)
		case m.Request != nil && m.Request.Method == "":
			// Too large for the control channel: the whole request waits
			// on a rendezvous socket.
			go l.serveRendezvous(m.Request.Address, nil)
		case m.Request != nil:
			var body []byte
			if m.Request.Body {
				bt, b, err := ws.Read(ctx)
				if err != nil {
					return describeClose(err)
				}
				if bt != websocket.MessageBinary {
					return fmt.Errorf("cannot read request %s body: got a text frame", m.Request.ID)
				}
				body = b
			}
			go l.serveControlRequest(ctx, c, m.Request, body)
		default:
			l.log.Debug("ignoring unknown control message", "msg", string(data))
		}
	}
}

// describeClose turns the service's close codes into errors worth logging.
func describeClose(err error) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusGoingAway:
		return fmt.Errorf("relay closed the control channel (1001: hybrid connection deleted or disabled, or service restarting): %w", err)
	case websocket.StatusPolicyViolation:
		return fmt.Errorf("relay closed the control channel (1008: token expired or renewal refused): %w", err)
	case websocket.StatusInternalError:
		return fmt.Errorf("relay closed the control channel (1011: service error): %w", err)
	}
	return fmt.Errorf("relay control channel failed: %w", err)
}

// renewTokens sends a fresh token on the open channel before the current one
// expires; the service replies nothing on success and closes with 1008 when
// it refuses it. Tokens without expiry (static SAS) are never renewed.
func (l *Listener) renewTokens(ctx context.Context, c *control) {
	for {
		l.ep.tokens.mu.Lock()
		exp, issued := l.ep.tokens.tok.ExpiresOn, l.ep.tokens.issued
		l.ep.tokens.mu.Unlock()
		if exp.IsZero() {
			return
		}
		wait := time.Until(exp) - renewMargin(issued, exp)
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		tok, err := l.ep.tokens.fresh(ctx, l.ep.resource())
		if err == nil {
			err = c.send(ctx, wire.Message{RenewToken: &wire.RenewToken{Token: tok.Value}}, nil)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("cannot renew relay token; retrying", "err", err)
			if !sleepCtx(ctx, 2*time.Second) {
				return
			}
			continue
		}
		l.log.Debug("relay token renewed", "expires", tok.ExpiresOn)
	}
}

// sleepCtx waits d and reports true, or false if ctx ends first. (It
// repeats runtime/retry.Sleep: package relay depends on nothing else of
// the runtime.)
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// keepAlive pings the control channel; a ping left unanswered closes the
// socket so the read loop ends and run reconnects. WebSocket pings are what
// the SDKs use; the protocol defines no JSON ping message.
func (l *Listener) keepAlive(ctx context.Context, ws *websocket.Conn) {
	err := pingUntilDead(ctx, ws, l.cfg.KeepAlive, min(10*time.Second, l.cfg.KeepAlive))
	if ctx.Err() == nil {
		l.log.Warn("relay keepalive ping failed; reconnecting", "err", err)
		_ = ws.CloseNow()
	}
}

// pingUntilDead pings ws every interval until ctx ends (nil) or a ping is
// not answered within timeout (that error).
func pingUntilDead(ctx context.Context, ws *websocket.Conn, every, timeout time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := ws.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}
