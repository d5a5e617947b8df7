package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
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
		return fmt.Errorf("relay config: %w", err)
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || (c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff) {
		return fmt.Errorf("relay config: MinBackoff/MaxBackoff: want 0 <= min <= max, got %v/%v", c.MinBackoff, c.MaxBackoff)
	}
	if c.AcceptTimeout < 0 {
		return fmt.Errorf("relay config: AcceptTimeout: negative")
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
