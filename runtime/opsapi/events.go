package opsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Bounds of the interval a client may ask for on /v1/events.
const (
	MinEventInterval = 100 * time.Millisecond
	MaxEventInterval = 5 * time.Minute
)

var (
	errShuttingDown      = errors.New("server shutting down")
	errCredentialChanged = errors.New("operator credential revoked or changed")
)

// recheckStream authenticates a stream's request again every
// Config.StreamRecheck and ends the stream (close 1008) once the
// credential no longer authenticates, or its grants differ from those the
// stream was opened with: a stream lives no longer than what authorized
// it. A client that reconnects is checked afresh.
func (s *Server) recheckStream(ctx context.Context, r *http.Request, cancel context.CancelCauseFunc) {
	opened, _ := PrincipalFrom(r.Context())
	t := time.NewTicker(s.cfg.StreamRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, err := s.cfg.Auth.Authenticate(r)
		if err == nil && p.Subject() == opened.Subject() && p.Grants.String() == opened.Grants.String() {
			continue
		}
		s.cfg.Logger.WarnContext(ctx, "ending a stream: its credential no longer authorizes it", "request_id", requestID(r.Context()), "path", r.URL.Path, "operator", opened.String(), "err", err)
		cancel(errCredentialChanged)
		return
	}
}

// events streams status events over a WebSocket until the client closes it
// or the server shuts down. It is the pattern for anything that outlives the
// relay's 60 s HTTP deadline: the request itself returns at once (101), and
// the relay carries the WebSocket for as long as both ends keep it.
//
// Query parameters: interval (Go duration, default Config.EventInterval).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	interval := s.cfg.EventInterval
	if v := r.URL.Query().Get("interval"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinEventInterval || d > MaxEventInterval {
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("interval %q must be a duration between %s and %s", v, MinEventInterval, MaxEventInterval))
			return
		}
		interval = d
	}
	s.serveStream(w, r, "events", func(ctx context.Context, c *websocket.Conn) error {
		return s.streamStatus(ctx, c, interval)
	})
}

// serveStream upgrades r to a WebSocket and runs stream on it until it
// returns, the client goes away, or the server shuts down (close 1001, so
// that clients reconnect elsewhere). A request that is not an upgrade gets
// 426. The client sends nothing but control frames.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, name string, stream func(context.Context, *websocket.Conn) error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		writeError(w, r, http.StatusUpgradeRequired, CodeUpgradeRequired, r.URL.Path+" is a WebSocket endpoint")
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		// Accept has already answered (400/426 and friends).
		s.cfg.Logger.WarnContext(r.Context(), "cannot accept "+name+" WebSocket", "request_id", requestID(r.Context()), "err", err)
		return
	}
	defer c.CloseNow()
	// CloseRead handles the client's control frames and ends ctx when the
	// client goes away.
	ctx, cancel := context.WithCancelCause(c.CloseRead(r.Context()))
	defer cancel(nil)
	go func() {
		select {
		case <-s.stopping:
			cancel(errShuttingDown)
		case <-ctx.Done():
		}
	}()
	go s.recheckStream(ctx, r, cancel)
	err = stream(ctx, c)
	switch {
	case errors.Is(context.Cause(ctx), errShuttingDown):
		c.Close(websocket.StatusGoingAway, "server shutting down")
	case errors.Is(context.Cause(ctx), errCredentialChanged):
		c.Close(websocket.StatusPolicyViolation, "the operator credential was revoked or its roles changed; reconnect")
	case err == nil, errors.Is(err, context.Canceled), websocket.CloseStatus(err) != -1:
		c.Close(websocket.StatusNormalClosure, "")
	default:
		s.cfg.Logger.WarnContext(r.Context(), name+" stream ended", "request_id", requestID(r.Context()), "err", err)
		c.Close(websocket.StatusInternalError, "server error")
	}
}

func (s *Server) streamStatus(ctx context.Context, c *websocket.Conn, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	var seq int64
	for {
		st, err := s.currentStatus(ctx)
		if err != nil {
			return err
		}
		seq++
		ev := Event{Type: EventStatus, Seq: seq, Time: st.Time, Status: &st}
		if err := writeEvent(ctx, c, ev); err != nil {
			return err
		}
		if err := waitTick(ctx, c, nil, tick.C, ping.C); err != nil {
			return err
		}
	}
}

// waitTick waits for the next tick or wake-up (nil: none), pinging the
// client meanwhile so that a half-dead connection is noticed between
// messages.
func waitTick(ctx context.Context, c *websocket.Conn, wake <-chan struct{}, tick, ping <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
			return nil
		case <-tick:
			return nil
		case <-ping:
			if err := pingClient(ctx, c); err != nil {
				return fmt.Errorf("WebSocket ping failed: %w", err)
			}
		}
	}
}

// writeTimeout bounds one write or ping on a stream.
const writeTimeout = 15 * time.Second

// detached is ctx without its cancellation, bounded by writeTimeout, for
// a write on a stream. The WebSocket library closes the connection when
// the context of a write in progress ends, so a write on ctx, cancelled
// by Shutdown just as it went out, would drop the client without the
// close frame (1001) that tells it to reconnect. A client that goes away
// ends writes anyway: the connection closes under them.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// pingClient pings the client and waits for its pong; ctx ends the wait but
// not the ping's write (detached).
func pingClient(ctx context.Context, c *websocket.Conn) error {
	done := make(chan error, 1)
	go func() {
		pctx, cancel := detached(ctx)
		defer cancel()
		done <- c.Ping(pctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func writeEvent(ctx context.Context, c *websocket.Conn, ev Event) error {
	return writeMessage(ctx, c, ev)
}

// writeMessage sends v as one JSON text message.
func writeMessage(ctx context.Context, c *websocket.Conn, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode message: %w", err)
	}
	wctx, cancel := detached(ctx)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, data)
}
