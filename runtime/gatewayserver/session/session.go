// Package session is the gateway's side of the connector session: a
// WebSocket at sessionproto.ConnectPath, authenticated by a bearer access token,
// over which a connector sends to the cloud, manages its topic subscriptions,
// obtains a SAS URL for its own queue and receives nudges.
//
// Identity comes only from the verified token. A message that tries to carry
// identity headers is refused with an error frame and an audit log line; the
// identity of the session is what the CloudSender stamps on every message.
//
// One misbehaving connector cannot hurt the others: malformed and oversize
// frames are answered with error frames, each session has its own goroutine
// and a bounded number of requests in flight, a slow connector only slows
// its own session, and a connector holds at most MaxSessionsPerConnector
// sessions on a gateway: the next one closes its oldest with
// sessionproto.CloseSessionLimit. Closing the oldest rather than refusing the
// newest means a connector that lost track of a half-open session (or whose
// stolen token someone else floods with) always gets in with a fresh one.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/gatewayserver/metrics"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Identity is the verified tenant and connector of a session.
type Identity = ids.ConnectorID

// Principal is what a verified token proves: who, and until when.
type Principal struct {
	Identity
	Expires time.Time
}

// Verifier checks a bearer access token and returns the principal it proves.
type Verifier interface {
	Verify(ctx context.Context, rawToken string) (Principal, error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, rawToken string) (Principal, error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, raw string) (Principal, error) { return f(ctx, raw) }

// CloudSender puts a connector's message on the cloud queue with from
// stamped as its verified origin, and returns once the bus has accepted it.
// DeadLetter records a message the connector could not handle, with from as
// the connector that reported it.
type CloudSender interface {
	SendToCloud(ctx context.Context, from Identity, m sessionproto.Message) (messageID string, err error)
	DeadLetter(ctx context.Context, from Identity, d sessionproto.DeadLetter) error
}

// Subscriptions stores topic subscriptions.
type Subscriptions interface {
	Subscribe(ctx context.Context, tenant, topic, connector string) error
	Unsubscribe(ctx context.Context, tenant, topic, connector string) error
}

// QueueAccess grants a connector access to its own queue and extends
// messages' visibility on it. The queue is always id's own.
type QueueAccess interface {
	Grant(ctx context.Context, id Identity) (sessionproto.QueueAccess, error)
	Extend(ctx context.Context, id Identity, messageID, popReceipt, text string, visibility time.Duration) (popReceiptOut string, nextVisible time.Time, err error)
}

// Uploads hands out write-only URLs for bodies too large for a frame.
// Optional; without it upload requests are refused.
type Uploads interface {
	UploadURL(ctx context.Context, id Identity) (sessionproto.Upload, error)
}

// Presence records which replica holds a connector's session so that
// nudges routed elsewhere reach it. Optional.
type Presence interface {
	Join(ctx context.Context, id Identity, session string) error
	Leave(ctx context.Context, id Identity, session string) error
}

// Directory says whether a connector may hold a session: registered and not
// disabled. Optional; without it any verified token opens a session.
type Directory interface {
	Active(id Identity) bool
}

// Config configures a Server.
type Config struct {
	Verifier      Verifier
	Sender        CloudSender
	Subscriptions Subscriptions
	QueueAccess   QueueAccess
	Presence      Presence  // optional: nil on a single replica
	Directory     Directory // optional: refuse and end sessions of removed or disabled connectors
	Uploads       Uploads   // optional: large connector → cloud bodies
	Metrics       *metrics.Metrics
	Logger        *slog.Logger

	// PingInterval is how often the gateway pings each connector (default
	// 30s, well under the 240s idle timeout of Container Apps ingress).
	PingInterval time.Duration
	// WriteTimeout bounds each frame write (default 10s).
	WriteTimeout time.Duration
	// CloseTimeout bounds how long a session the gateway closes waits for
	// the connector's close frame after sending its own, before the
	// connection is closed anyway. 0 (the default) leaves it to the
	// WebSocket library, which waits 5s; a longer value is cut to that.
	CloseTimeout time.Duration
	// RequestTimeout bounds one request's backend call (default 30s).
	RequestTimeout time.Duration
	// MaxInFlight bounds the requests one session has in flight (default 8);
	// beyond it the gateway stops reading that session's frames.
	MaxInFlight int
	// Deliveries: sessions that ask for them (sessionproto.DeliverParam)
	// get routed messages in deliver frames (Deliver). Set on replicas that
	// route; false, the parameter is checked and ignored.
	Deliveries bool
	// MaxSessionsPerConnector bounds the sessions one connector holds on
	// this gateway replica at once (default DefaultMaxSessionsPerConnector); a new
	// session beyond it closes the connector's oldest.
	MaxSessionsPerConnector int
}

// DefaultMaxSessionsPerConnector leaves room for a connector's restarts
// and reconnects overlapping a session the gateway has not yet seen drop,
// and for a few processes sharing one registration.
const DefaultMaxSessionsPerConnector = 4

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Verifier == nil:
		return errors.New("session config: Verifier is required")
	case c.Sender == nil:
		return errors.New("session config: Sender is required")
	case c.Subscriptions == nil:
		return errors.New("session config: Subscriptions is required")
	case c.QueueAccess == nil:
		return errors.New("session config: QueueAccess is required")
	case c.PingInterval < 0 || c.PingInterval > 120*time.Second:
		return fmt.Errorf("session config: PingInterval %s must be between 0 (default) and 120s", c.PingInterval)
	case c.WriteTimeout < 0, c.CloseTimeout < 0, c.RequestTimeout < 0, c.MaxInFlight < 0:
		return errors.New("session config: WriteTimeout, CloseTimeout, RequestTimeout and MaxInFlight must not be negative")
	case c.MaxSessionsPerConnector < 0:
		return fmt.Errorf("session config: MaxSessionsPerConnector %d must not be negative (0 is the default, %d)", c.MaxSessionsPerConnector, DefaultMaxSessionsPerConnector)
	}
	return nil
}

// Server accepts and serves connector sessions.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics

	mu       sync.Mutex
	sessions map[Identity][]*conn // in order of arrival
	closing  bool
	wg       sync.WaitGroup // one per open session
	seq      atomic.Uint64
	poller   *poller // nil: each session keeps a goroutine blocked in its read
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 8
	}
	if cfg.MaxSessionsPerConnector == 0 {
		cfg.MaxSessionsPerConnector = DefaultMaxSessionsPerConnector
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(nil)
	}
	return &Server{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, sessions: map[Identity][]*conn{}, poller: defaultPoller()}, nil
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, set := range s.sessions {
		n += len(set)
	}
	return n
}

// Nudge tells every session of id on this replica that its queue has
// messages. It never blocks and reports whether there was a session.
func (s *Server) Nudge(id Identity) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.sessions[id]
	for _, c := range set {
		c.nudge()
	}
	if len(set) > 0 {
		s.metrics.Nudges.WithLabelValues("local").Inc()
	}
	return len(set) > 0
}

// Deliverable reports whether id has a session on this replica that
// takes deliveries (sessionproto.TypeDeliver), and for how long a message
// delivered to it is to stay hidden.
func (s *Server) Deliverable(id Identity) (time.Duration, bool) {
	c := s.deliverer(id)
	if c == nil {
		return 0, false
	}
	return c.deliver, true
}

// deliverer returns id's newest session that takes deliveries, or nil.
func (s *Server) deliverer(id Identity) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest *conn
	for _, c := range s.sessions[id] {
		if c.deliver > 0 && c.helloed.Load() && (newest == nil || c.seq > newest.seq) {
			newest = c
		}
	}
	return newest
}

// Deliver hands d, a message the router has just put on id's queue hidden,
// to id's newest session that takes deliveries, and reports whether there
// was one. It never blocks: the frame is written on a goroutine of its
// own, and failed runs if it cannot be written.
func (s *Server) Deliver(id Identity, d sessionproto.Delivery, failed func()) bool {
	c := s.deliverer(id)
	if c == nil {
		return false
	}
	s.metrics.Nudges.WithLabelValues("delivered").Inc()
	go func() {
		if err := c.write(context.Background(), sessionproto.Frame{Type: sessionproto.TypeDeliver, Delivery: &d}); err != nil {
			c.log().Debug("cannot write delivery", "err", err)
			failed()
		}
	}()
	return true
}

// Shutdown stops accepting sessions, lets requests in flight finish, closes
// every session with status 1001 (going away) and waits for them to end or
// ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	var all []*conn
	for _, set := range s.sessions {
		all = append(all, set...)
	}
	s.mu.Unlock()
	for _, c := range all {
		go c.goAway()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range all {
			_ = c.ws.CloseNow()
		}
		return fmt.Errorf("cannot close %d sessions in time: %w", len(all), ctx.Err())
	}
}

// ServeHTTP accepts a session: it authenticates the bearer token before the
// WebSocket upgrade, so a bad token is an HTTP 401 and never a session.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "gateway is shutting down", http.StatusServiceUnavailable)
		return
	}
	raw, err := accesstoken.FromRequest(r)
	if err != nil {
		s.audit(r.Context(), "session_rejected", Identity{}, r, "reason", err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer realm="bote"`)
		http.Error(w, "missing bearer token", http.StatusUnauthorized)
		return
	}
	p, err := s.cfg.Verifier.Verify(r.Context(), raw)
	id := p.Identity
	if err != nil {
		s.audit(r.Context(), "session_rejected", Identity{}, r, "reason", err.Error())
		w.Header().Set("WWW-Authenticate", `Bearer realm="bote", error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	queue, err := queuename.For(id)
	if err != nil {
		s.audit(r.Context(), "session_rejected", id, r, "reason", err.Error())
		http.Error(w, "invalid identity", http.StatusForbidden)
		return
	}
	if d := s.cfg.Directory; d != nil && !d.Active(id) {
		s.audit(r.Context(), "session_rejected", id, r, "reason", "connector is not registered or is disabled")
		http.Error(w, "connector is not registered or is disabled", http.StatusForbidden)
		return
	}
	deliver, err := deliverParam(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := s.newConn(p, queue, r.RemoteAddr, deliver)
	ws, err := websocket.Accept(hijacker{w, c}, r, &websocket.AcceptOptions{Subprotocols: []string{sessionproto.Subprotocol}})
	if err != nil {
		s.log.Debug("websocket accept failed", "err", err)
		return
	}
	c.ws = ws
	if ws.Subprotocol() != sessionproto.Subprotocol {
		_ = ws.Close(websocket.StatusPolicyViolation, "subprotocol "+sessionproto.Subprotocol+" required")
		return
	}
	ws.SetReadLimit(sessionproto.HardFrameLimit)
	if !s.add(c) {
		_ = ws.Close(websocket.StatusGoingAway, "gateway is shutting down")
		return
	}
	// The session is read by goroutines of its own (none while it is idle
	// and parked) and this handler returns: net/http then drops what it
	// keeps per request until its handler returns (its read and write
	// buffers, the response), which would otherwise stay for the life of
	// the session. Its context is a fresh one: one derived from the
	// request's (even without its cancellation) would keep net/http's
	// request and connection contexts alive as long as the session.
	ctx := context.Background()
	c.open(ctx)
	c.start(ctx)
}

func (s *Server) newConn(p Principal, queue, remote string, deliver time.Duration) *conn {
	seq := s.seq.Add(1)
	c := &conn{
		srv:    s,
		id:     p.Identity,
		queue:  queue,
		seq:    seq,
		name:   fmt.Sprintf("%s/%s#%d", p.Identity.Tenant, p.Identity.Connector, seq),
		done:   make(chan struct{}),
		slots:  make(chan struct{}, s.cfg.MaxInFlight),
		remote: remote,
	}
	if s.cfg.Deliveries {
		c.deliver = deliver
	}
	c.expires.Store(p.Expires.UnixNano())
	c.nudging.Store(nudgeWriting) // held until the hello is out: it is the first frame
	return c
}

// deliverParam reads sessionproto.DeliverParam: 0 when absent.
func deliverParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get(sessionproto.DeliverParam)
	if v == "" {
		return 0, nil
	}
	secs, err := strconv.Atoi(v)
	if err != nil || secs < sessionproto.MinDeliverSeconds || secs > sessionproto.MaxDeliverSeconds {
		return 0, fmt.Errorf("%s must be whole seconds between %d and %d", sessionproto.DeliverParam, sessionproto.MinDeliverSeconds, sessionproto.MaxDeliverSeconds)
	}
	return time.Duration(secs) * time.Second, nil
}

// add registers c; beyond the connector's cap it takes the oldest of the
// connector's sessions out of the set and closes it.
func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	set := s.sessions[c.id]
	for len(set) >= s.cfg.MaxSessionsPerConnector {
		i := 0
		for j, o := range set {
			if o.seq < set[i].seq {
				i = j
			}
		}
		oldest := set[i]
		set = slices.Delete(set, i, i+1)
		s.metrics.Evicted.Inc()
		s.log.Warn("audit: session_evicted", "audit", true, "event", "session_evicted", "tenant", c.id.Tenant, "connector", c.id.Connector,
			"session", oldest.name, "by", c.name, "remote", c.remote, "limit", s.cfg.MaxSessionsPerConnector)
		go oldest.close(sessionproto.CloseSessionLimit, fmt.Sprintf("the connector opened more than %d sessions on this gateway replica; the oldest is closed", s.cfg.MaxSessionsPerConnector))
	}
	s.sessions[c.id] = append(set, c)
	s.wg.Add(1)
	s.metrics.Sessions.Inc()
	return true
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	set := s.sessions[c.id]
	if i := slices.Index(set, c); i >= 0 { // not if evicted
		set = slices.Delete(set, i, i+1)
	}
	if len(set) == 0 {
		delete(s.sessions, c.id)
	} else {
		s.sessions[c.id] = set
	}
	s.mu.Unlock()
	s.metrics.Sessions.Dec()
	s.wg.Done()
}

func (s *Server) audit(ctx context.Context, event string, id Identity, r *http.Request, attrs ...any) {
	attrs = append([]any{"audit", true, "event", event, "tenant", id.Tenant, "connector", id.Connector, "remote", r.RemoteAddr}, attrs...)
	s.log.WarnContext(ctx, "audit: "+event, attrs...)
}
