package relay

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// accept takes (or rejects) a sender's WebSocket by dialing the rendezvous
// address exactly as given.
func (l *Listener) accept(a *wire.Accept) {
	req := &ConnectRequest{ID: a.ID, Header: http.Header{}}
	for k, v := range a.ConnectHeaders {
		req.Header.Set(k, v)
	}
	if u, err := url.Parse(a.Address); err == nil {
		req.Path = appPath(u, l.ep.hc)
	}
	req.RemoteAddr = a.RemoteEndpoint.HostPort()
	req.Subprotocol = chooseSubprotocol(req.Header.Get("Sec-WebSocket-Protocol"), l.cfg.Subprotocols)
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.AcceptTimeout)
	defer cancel()
	if l.cfg.Gate != nil {
		if err := l.cfg.Gate(ctx, req); err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) {
				rej = &Rejection{StatusCode: http.StatusInternalServerError, Description: err.Error()}
			}
			l.reject(ctx, a.Address, rej)
			return
		}
	}
	// The listener accepts a subprotocol by asking for it on the
	// rendezvous; the relay echoes it to the sender (protocol document,
	// "Accepting the socket"; .NET RelayedHttpListenerContext.AcceptAsync).
	var subprotocols []string
	if req.Subprotocol != "" {
		subprotocols = []string{req.Subprotocol}
	}
	ws, err := l.ep.dial(ctx, "accept", a.Address, nil, subprotocols...)
	if err != nil {
		l.log.Warn("cannot accept relayed connection", "id", a.ID, "err", err)
		return
	}
	remote := req.RemoteAddr
	if remote == "" {
		remote = "sender/" + a.ID
	}
	conn := &Conn{
		// Not l.ctx: accepted streams outlive the listener (http.Server's
		// Shutdown closes the listener first, then drains connections).
		Conn:    newStream(ws),
		request: req,
		local:   l.Addr(),
		remote:  relayAddr{s: remote},
	}
	select {
	case l.conns <- conn:
	case <-l.ctx.Done():
		_ = ws.Close(websocket.StatusGoingAway, "listener closed")
	}
}

// reject refuses a rendezvous: the service signals success with 410 Gone.
func (l *Listener) reject(ctx context.Context, address string, rej *Rejection) {
	u := address + "&" + url.Values{
		wire.ParamStatusCode:        {strconv.Itoa(rej.StatusCode)},
		wire.ParamStatusDescription: {rej.Description},
	}.Encode()
	ws, err := l.ep.dial(ctx, "reject", u, nil)
	if err == nil {
		_ = ws.CloseNow()
		l.log.Warn("relay accepted a rejection as a connection; closed it")
		return
	}
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusGone {
		return
	}
	l.log.Warn("cannot reject relayed connection", "err", err)
}

// chooseSubprotocol picks the first of the offered subprotocols (a
// Sec-WebSocket-Protocol value) that the listener supports.
func chooseSubprotocol(offered string, supported []string) string {
	for _, o := range strings.Split(offered, ",") {
		o = strings.TrimSpace(o)
		for _, s := range supported {
			if o != "" && o == s {
				return o
			}
		}
	}
	return ""
}

// appPath is the sender's path after the hybrid connection name, with sb-*
// query parameters removed, as the SDKs present it to applications.
func appPath(u *url.URL, hc string) string {
	p := u.Path
	p = strings.TrimPrefix(p, wire.PathPrefix[:len(wire.PathPrefix)-1])
	p = stripEntity(p, hc)
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "sb-") {
			q.Del(k)
		}
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// stripEntity removes a leading "/{hc}" (case-insensitively) from p.
func stripEntity(p, hc string) string {
	prefix := "/" + hc
	if len(p) >= len(prefix) && strings.EqualFold(p[:len(prefix)], prefix) && (len(p) == len(prefix) || p[len(prefix)] == '/' || p[len(prefix)] == '?') {
		p = p[len(prefix):]
	}
	if p == "" || p[0] == '?' {
		p = "/" + p
	}
	return p
}

// Conn is a relayed WebSocket as a byte stream, on either side: from
// Listener.Accept (Request describes what the sender asked for) or from
// Sender.Dial (Request is nil). Read deadlines interrupt only the waiting
// Read, as on TCP, so http.Server can hijack it for upgrades.
type Conn struct {
	net.Conn
	request       *ConnectRequest
	local, remote net.Addr
}

// Request describes what the sender asked for when connecting; nil on the
// sender's side.
func (c *Conn) Request() *ConnectRequest { return c.request }

// LocalAddr is the hybrid connection.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the sender, as far as the relay tells.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

var (
	_ net.Listener = (*Listener)(nil)
	_ net.Conn     = (*Conn)(nil)
)
