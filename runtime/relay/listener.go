package relay

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// ListenerConfig configures Listen.
type ListenerConfig struct {
	// Namespace is where the hybrid connection lives (see ParseNamespace).
	Namespace Namespace
	// HybridConnection is the entity name; defaults to Namespace.EntityPath.
	HybridConnection string
	// Credential needs the Listen right; defaults to the SAS rule of a
	// connection string.
	Credential Credential
	// Insecure allows ws:// and http:// (a local test relay). Never set it
	// for Azure.
	Insecure bool
	// TLSConfig overrides the TLS client configuration.
	TLSConfig *tls.Config
	// Logger receives connection state changes; nil discards.
	Logger *slog.Logger
	// ID is the tracking id sent as sb-hc-id; random when empty.
	ID string
	// KeepAlive is the interval of WebSocket pings on the control channel
	// (default 30 s, well under the ~4 min after which idle listeners are
	// dropped); a ping unanswered within 10 s (or KeepAlive, if shorter)
	// forces a reconnect. Negative disables.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 1 s and
	// 30 s, as the SDKs' 0,1,2,5,10,30 s schedule); each delay is jittered.
	MinBackoff, MaxBackoff time.Duration
	// AcceptTimeout bounds dialing a rendezvous address (default 20 s, as
	// the .NET and Java SDKs; the service holds it about 30 s).
	AcceptTimeout time.Duration
	// Gate, when set, decides on each sender WebSocket before it is
	// accepted; returning a *Rejection (see Reject) refuses it with that
	// status, any other error with 500.
	Gate func(ctx context.Context, req *ConnectRequest) error
	// OnStatus, when set, is called when the control channel goes online or
	// offline (err says why).
	OnStatus func(online bool, err error)
	// Subprotocols are the WebSocket subprotocols the listener speaks. A
	// sender's connection that offers some is accepted with the first it
	// offers that is listed here, which the relay echoes to the sender
	// (ConnectRequest.Subprotocol); with no match it is accepted without
	// one and the sender's WebSocket client decides, as RFC 6455 has it.
	Subprotocols []string
}

// Validate reports the first bad field.
func (c ListenerConfig) Validate() error {
	if err := validateEndpoint(c.Namespace, c.HybridConnection, c.Credential); err != nil {
		return fmt.Errorf("invalid listener config: %w", err)
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || (c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff) {
		return fmt.Errorf("invalid listener config: MinBackoff/MaxBackoff: want 0 <= min <= max, got %v/%v", c.MinBackoff, c.MaxBackoff)
	}
	if c.AcceptTimeout < 0 {
		return fmt.Errorf("invalid listener config: AcceptTimeout: negative")
	}
	return nil
}

// ConnectRequest describes a sender's WebSocket before it is accepted.
type ConnectRequest struct {
	// ID is the rendezvous id the relay assigned.
	ID string
	// Path is what the sender appended after the hybrid connection name,
	// with the sb-hc-* parameters removed ("/" when nothing).
	Path string
	// Header holds the sender's connect headers.
	Header http.Header
	// RemoteAddr is the sender's address when the relay says it.
	RemoteAddr string
	// Subprotocol is the WebSocket subprotocol the connection is accepted
	// with (see ListenerConfig.Subprotocols); empty when none.
	Subprotocol string
}

// Rejection refuses a sender's connection from a Gate.
type Rejection struct {
	StatusCode  int
	Description string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("rejected with %d %s", r.StatusCode, r.Description)
}

// Reject returns a *Rejection for Gate.
func Reject(status int, description string) error {
	return &Rejection{StatusCode: status, Description: description}
}

// Listener is a hybrid connection listener and a net.Listener: serve it with
// http.Server.Serve. Accept yields two kinds of net.Conn:
//
//   - one per sender WebSocket (a *Conn, the relayed byte stream; a sender's
//     StreamTransport speaks HTTP/1.1 over it, so long-lived streaming
//     responses and upgrades work);
//   - one per relayed HTTP request (HTTP mode, the sender's RoundTrip): the
//     request is presented to http.Server as an HTTP/1.1 exchange on an
//     in-memory connection, and the response goes back over the control
//     channel, or over a rendezvous WebSocket when its body or headers exceed
//     the control channel's 64 kB / 32 kB limits. Those requests see their
//     path with the hybrid connection name removed.
//
// The listener reconnects after any drop with jittered exponential backoff
// and renews its token before expiry on the open channel. It gives up only on
// a permanent refusal (401, 403, 404): Accept then returns a
// *ListenerClosedError wrapping the *StatusError.
type Listener struct {
	cfg    ListenerConfig
	ep     *endpoint
	log    *slog.Logger
	id     string
	conns  chan net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu      sync.Mutex
	current *websocket.Conn
	err     error // why the listener stopped; nil while running
	online  atomic.Bool
	closing atomic.Bool
}

// Listen connects the control channel and returns once it is online; ctx
// bounds only that first connection, the listener then runs until Close. A
// failure of the first connection is returned as is (a *StatusError or an
// *UnreachableError); later drops are retried in the background.
func Listen(ctx context.Context, cfg ListenerConfig) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.AcceptTimeout == 0 {
		cfg.AcceptTimeout = 20 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := cfg.ID
	if id == "" {
		id = newID()
	}
	ep := newEndpoint(cfg.Namespace, cfg.HybridConnection, cfg.Credential, cfg.Insecure, cfg.TLSConfig)
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg: cfg, ep: ep, id: id, cancel: cancel, ctx: lctx,
		log:   log.With("relay_host", ep.host, "hybrid_connection", ep.hc, "listener_id", id),
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}
	ws, err := l.connect(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	l.online.Store(true)
	go l.run(ws)
	return l, nil
}

// Addr returns the hybrid connection's address.
func (l *Listener) Addr() net.Addr { return relayAddr{s: l.ep.host + "/" + l.ep.hc} }

// ID is the listener's tracking id.
func (l *Listener) ID() string { return l.id }

// Online reports whether the control channel is connected now.
func (l *Listener) Online() bool { return l.online.Load() }

// Accept waits for the next relayed connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, l.stopErr()
	}
}

func (l *Listener) stopErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	return net.ErrClosed
}

// Close disconnects the control channel (a clean 1000 close, which is how a
// listener leaves) and makes Accept return net.ErrClosed. Connections
// already accepted stay open.
func (l *Listener) Close() error {
	l.closing.Store(true)
	l.mu.Lock()
	ws := l.current
	l.mu.Unlock()
	if ws != nil {
		// A listener leaves with a clean close; the service never closes
		// the control channel cleanly itself.
		_ = ws.Close(websocket.StatusNormalClosure, "listener closed")
	}
	l.cancel()
	<-l.done
	return nil
}

// Done is closed once the listener has stopped, by Close or permanently.
func (l *Listener) Done() <-chan struct{} { return l.done }

// Err is why the listener stopped: nil while it runs, net.ErrClosed after
// Close, a *ListenerClosedError after a permanent failure.
func (l *Listener) Err() error {
	select {
	case <-l.done:
		return l.stopErr()
	default:
		return nil
	}
}

func (l *Listener) connect(ctx context.Context) (*websocket.Conn, error) {
	h, err := l.ep.authHeader(ctx)
	if err != nil {
		return nil, err
	}
	u := l.ep.wsURL("", "", url.Values{wire.ParamAction: {wire.ActionListen}, wire.ParamID: {l.id}})
	dctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	ws, err := l.ep.dial(dctx, "listen", u, h)
	if err != nil {
		return nil, err
	}
	// Control messages are at most 32 kB of headers plus a 64 kB body.
	ws.SetReadLimit(4 * (wire.MaxControlBody + wire.MaxControlHeaders))
	l.mu.Lock()
	l.current = ws // for Close's clean close, even before serveControl runs
	l.mu.Unlock()
	return ws, nil
}

// run keeps a control channel up until Close or a permanent failure.
func (l *Listener) run(ws *websocket.Conn) {
	defer close(l.done)
	defer l.cancel()
	attempt := 0
	for {
		connectedAt := time.Now()
		l.setStatus(true, nil)
		err := l.serveControl(ws)
		if l.ctx.Err() != nil || l.closing.Load() {
			l.setStatus(false, net.ErrClosed)
			return
		}
		l.setStatus(false, err)
		l.log.Warn("relay control channel dropped; reconnecting", "err", err)
		if time.Since(connectedAt) > time.Minute {
			attempt = 0 // it was healthy; start the schedule over
		}
		for {
			if !sleepCtx(l.ctx, l.backoff(attempt)) {
				l.setStatus(false, net.ErrClosed)
				return
			}
			attempt++
			ws, err = l.connect(l.ctx)
			if err == nil {
				l.log.Info("relay control channel reconnected", "attempt", attempt)
				break
			}
			if l.ctx.Err() != nil {
				l.setStatus(false, net.ErrClosed)
				return
			}
			var se *StatusError
			if errors.As(err, &se) && se.Permanent() {
				l.log.Error("relay listener giving up", "err", err)
				l.mu.Lock()
				l.err = &ListenerClosedError{Err: err}
				l.mu.Unlock()
				l.setStatus(false, err)
				return
			}
			l.log.Warn("relay reconnect failed", "attempt", attempt, "err", err)
		}
	}
}

func (l *Listener) setStatus(online bool, err error) {
	l.online.Store(online)
	if l.cfg.OnStatus != nil {
		l.cfg.OnStatus(online, err)
	}
}

// backoff is the delay before reconnect attempt n: the first is immediate
// but jittered (0 to MinBackoff/2), then MinBackoff doubling to MaxBackoff,
// each with ±25 % jitter so a fleet of listeners does not reconnect in step.
func (l *Listener) backoff(n int) time.Duration {
	if n == 0 {
		return time.Duration(rand.Int64N(int64(l.cfg.MinBackoff)/2 + 1))
	}
	d := l.cfg.MinBackoff << min(n-1, 20)
	if d > l.cfg.MaxBackoff || d <= 0 {
		d = l.cfg.MaxBackoff
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()*0.5))
}

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
