package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/sessionproto"
)

// session is one WebSocket session with the gateway.
type session struct {
	ws     *websocket.Conn
	hello  sessionproto.Hello
	seq    atomic.Uint64
	closed chan struct{}
	err    error // why it closed; valid once closed is closed

	mu      sync.Mutex
	pending map[string]chan sessionproto.Frame

	lastHeard atomic.Int64 // unix nanoseconds of the last frame or ping from the gateway
}

func (s *session) heard() { s.lastHeard.Store(time.Now().UnixNano()) }

// errSessionClosed reports a request cut off by the session's end.
var errSessionClosed = errors.New("session closed")

func (s *session) request(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	f.ID = strconv.FormatUint(s.seq.Add(1), 10)
	ch := make(chan sessionproto.Frame, 1)
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		return sessionproto.Frame{}, errSessionClosed
	}
	s.pending[f.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.pending != nil {
			delete(s.pending, f.ID)
		}
		s.mu.Unlock()
	}()
	data, err := sessionproto.Encode(f)
	if err != nil {
		return sessionproto.Frame{}, err
	}
	if limit := s.hello.MaxFrameBytes; limit > 0 && len(data) > limit {
		// The gateway would refuse it without being able to say which
		// request it was; refuse it here with the same code.
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeFrameTooLarge,
			Message: fmt.Sprintf("%s frame is %d bytes, the gateway accepts %d", f.Type, len(data), limit)}
	}
	// Cancelling a write midway makes the WebSocket library close the
	// connection; a caller giving up must not cost everyone the session.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	err = s.ws.Write(wctx, websocket.MessageText, data)
	cancel()
	if err != nil {
		return sessionproto.Frame{}, fmt.Errorf("%w: %w", errSessionClosed, err)
	}
	select {
	case reply := <-ch:
		if reply.Type == sessionproto.TypeError && reply.Error != nil {
			return sessionproto.Frame{}, reply.Error
		}
		return reply, nil
	case <-s.closed:
		return sessionproto.Frame{}, fmt.Errorf("%w: %w", errSessionClosed, s.err)
	case <-ctx.Done():
		return sessionproto.Frame{}, ctx.Err()
	}
}

// readLoop dispatches frames until the session ends.
func (s *session) readLoop(ctx context.Context, c *Client) {
	defer func() {
		s.mu.Lock()
		s.pending = nil
		s.mu.Unlock()
		close(s.closed)
	}()
	for {
		_, data, err := s.ws.Read(ctx)
		if err != nil {
			s.err = err
			return
		}
		s.heard()
		f, err := sessionproto.Decode(data)
		if err != nil {
			c.log.Warn("gateway sent an unreadable frame", "err", err)
			continue
		}
		switch {
		case f.Type == sessionproto.TypeNudge:
			c.nudge()
		case f.Type == sessionproto.TypeDeliver && f.Delivery != nil:
			c.deliver(*f.Delivery)
		case f.ID != "":
			s.mu.Lock()
			ch := s.pending[f.ID]
			s.mu.Unlock()
			if ch != nil {
				ch <- f
			}
		case f.Type == sessionproto.TypeError && f.Error != nil:
			c.log.Warn("gateway reported an error", "code", f.Error.Code, "message", f.Error.Message)
		}
	}
}

// keepSession connects, serves the session until it drops, and reconnects
// with exponential backoff and full jitter, until ctx ends.
func (c *Client) keepSession(ctx context.Context) {
	attempt := 0
	lost := time.Now() // when the connector was last without a session
	for ctx.Err() == nil {
		s, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := c.retryDelay(attempt, time.Since(lost), err)
			attempt++
			c.log.Warn("cannot connect to the gateway", "err", err, "retry_in", delay.Round(time.Millisecond))
			_ = retry.Sleep(ctx, delay)
			continue
		}
		attempt = 0
		c.log.Info("connected to the gateway", "session", s.hello.Session, "queue", s.hello.Queue)
		c.setSession(s)
		c.nudge() // drain on every (re)connect: a nudge may have been missed
		// A message the gateway put on the queue hidden for a delivery that
		// this session or the last one lost is visible again then.
		time.AfterFunc(c.cfg.Visibility+time.Second, c.nudge)
		c.serve(ctx, s)
		c.setSession(nil)
		lost = time.Now()
		status := websocket.CloseStatus(s.err)
		c.log.Info("session ended", "status", int(status), "err", s.err)
		if ctx.Err() != nil {
			return
		}
		// A gateway going away or a token expiring is routine: reconnect at
		// once (with a little jitter so a fleet does not stampede).
		if status != websocket.StatusGoingAway && status != websocket.StatusCode(sessionproto.CloseTokenExpired) {
			attempt = 1
		}
		_ = retry.Sleep(ctx, retry.Backoff(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt))
	}
}

// fastMaxBackoff caps reconnect delays during Config.FastReconnect.
const fastMaxBackoff = 2 * time.Second

// retryDelay is the wait before connect attempt attempt+1, the session
// having been lost for lostFor and the last attempt having failed with err:
// full jitter under a ceiling that doubles per attempt, held at
// fastMaxBackoff while the outage is younger than FastReconnect. A
// Retry-After from the idp is waited out first, plus the jittered delay so
// the clients it turned away do not return in the same instant.
func (c *Client) retryDelay(attempt int, lostFor time.Duration, err error) time.Duration {
	ceiling := c.cfg.MaxBackoff
	if lostFor < c.cfg.FastReconnect {
		ceiling = min(ceiling, fastMaxBackoff)
	}
	d := retry.Backoff(c.cfg.MinBackoff, ceiling, attempt)
	if oe := (*clientauth.OAuthError)(nil); errors.As(err, &oe) && oe.RetryAfter > 0 {
		d += min(oe.RetryAfter, c.cfg.MaxBackoff)
	}
	return d
}

func (c *Client) connect(ctx context.Context) (*session, error) {
	tok, err := c.tokens.TokenWithExpiry(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot get access token: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s := &session{closed: make(chan struct{}), pending: map[string]chan sessionproto.Frame{}}
	ws, resp, err := websocket.Dial(dctx, c.wsURL, &websocket.DialOptions{
		HTTPClient:   c.cfg.HTTPClient,
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + tok.AccessToken}},
		Subprotocols: []string{sessionproto.Subprotocol},
		OnPingReceived: func(context.Context, []byte) bool {
			s.heard()
			return true
		},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			c.tokens.Invalidate() // maybe revoked keys or a clock jump: get a new one
		}
		return nil, fmt.Errorf("cannot open session: %w", err)
	}
	ws.SetReadLimit(sessionproto.HardFrameLimit)
	_, data, err := ws.Read(dctx)
	if err != nil {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("cannot read hello: %w", err)
	}
	f, err := sessionproto.Decode(data)
	if err != nil || f.Type != sessionproto.TypeHello || f.Hello == nil {
		_ = ws.Close(websocket.StatusProtocolError, "expected hello")
		return nil, fmt.Errorf("gateway did not say hello: %s", data)
	}
	if f.Hello.Tenant != c.cfg.Tenant || f.Hello.Connector != c.cfg.Connector {
		_ = ws.Close(websocket.StatusPolicyViolation, "identity mismatch")
		return nil, fmt.Errorf("gateway says this session is %s/%s, configured as %s/%s", f.Hello.Tenant, f.Hello.Connector, c.cfg.Tenant, c.cfg.Connector)
	}
	s.ws, s.hello = ws, *f.Hello
	s.heard()
	return s, nil
}

// serve runs a session until it ends: it reads frames, renews the token
// before it expires and drops a session whose gateway went silent (no frame
// and no ping for three ping intervals: a half-open connection).
func (c *Client) serve(ctx context.Context, s *session) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.readLoop(sctx, c)
	defer func() { <-s.closed }()
	defer func() { _ = s.ws.Close(websocket.StatusNormalClosure, "connector stopping") }()

	ping := time.Duration(s.hello.PingIntervalSeconds) * time.Second
	if ping <= 0 {
		ping = 30 * time.Second
	}
	watchdog := time.NewTicker(ping)
	defer watchdog.Stop()
	renew := time.NewTimer(c.renewIn(sctx))
	defer renew.Stop()
	sent := "" // token the session holds; "" until the first renewal check
	if tok, err := c.tokens.TokenWithExpiry(sctx); err == nil {
		sent = tok.AccessToken
	}
	for {
		select {
		case <-s.closed:
			return
		case <-ctx.Done():
			return
		case <-watchdog.C:
			if silent := time.Since(time.Unix(0, s.lastHeard.Load())); silent > 3*ping {
				c.log.Warn("gateway silent; dropping the session", "silent_for", silent.Round(time.Second))
				_ = s.ws.CloseNow()
				return
			}
		case <-renew.C:
			renew.Reset(c.renewIn(sctx))
			tok, err := c.tokens.TokenWithExpiry(sctx)
			if err != nil {
				c.log.Warn("cannot renew access token", "err", err)
				continue
			}
			if tok.AccessToken == sent {
				continue
			}
			if _, err := s.request(sctx, sessionproto.Frame{Type: sessionproto.TypeAuth, Token: tok.AccessToken}); err != nil {
				c.log.Warn("gateway refused the renewed token", "err", err)
				continue
			}
			sent = tok.AccessToken
		}
	}
}

// renewIn is when to look for a fresher token: the token source refreshes
// at 80% of a token's life, so checking every fifth of the remaining life
// hands the gateway the new token well before the old one expires.
func (c *Client) renewIn(ctx context.Context) time.Duration {
	tok, err := c.tokens.TokenWithExpiry(ctx)
	if err != nil {
		return 10 * time.Second
	}
	return max(time.Until(tok.Expiry)/5, time.Second)
}
