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

var errShuttingDown = errors.New("server shutting down")

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
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		writeError(w, r, http.StatusUpgradeRequired, CodeUpgradeRequired, "/v1/events is a WebSocket endpoint")
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		// Accept has already answered (400/426 and friends).
		s.cfg.Logger.WarnContext(r.Context(), "cannot accept events WebSocket", "request_id", requestID(r.Context()), "error", err)
		return
	}
	defer c.CloseNow()
	// The client sends nothing but control frames; CloseRead handles them
	// and ends ctx when the client goes away.
	ctx, cancel := context.WithCancelCause(c.CloseRead(r.Context()))
	defer cancel(nil)
	go func() {
		select {
		case <-s.stopping:
			cancel(errShuttingDown)
		case <-ctx.Done():
		}
	}()
	err = s.streamStatus(ctx, c, interval)
	switch {
	case errors.Is(context.Cause(ctx), errShuttingDown):
		c.Close(websocket.StatusGoingAway, "server shutting down")
	case err == nil, errors.Is(err, context.Canceled), websocket.CloseStatus(err) != -1:
		c.Close(websocket.StatusNormalClosure, "")
	default:
		s.cfg.Logger.WarnContext(r.Context(), "events stream ended", "request_id", requestID(r.Context()), "error", err)
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
		if err := waitTick(ctx, c, tick.C, ping.C); err != nil {
			return err
		}
	}
}

// waitTick waits for the next tick, pinging the client meanwhile so that a
// half-dead connection is noticed between events.
func waitTick(ctx context.Context, c *websocket.Conn, tick, ping <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			return nil
		case <-ping:
			pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("events WebSocket ping failed: %w", err)
			}
		}
	}
}

func writeEvent(ctx context.Context, c *websocket.Conn, ev Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("cannot encode event: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, data)
}
