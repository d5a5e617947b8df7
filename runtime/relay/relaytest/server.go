// Package relaytest is the service side of Azure Relay Hybrid Connections as
// an in-process server, in the spirit of net/http/httptest: tests and local
// runs (cmd/devrelay) point package relay's listeners and senders at it.
//
// It implements what a client meets in Azure: listener registration with SAS
// checks (a rule without the right is refused with 403, a bad signature with
// 401, an unknown entity with 404), at most 25 listeners per hybrid
// connection, accept and rendezvous pairing for sender WebSockets (the
// sender's 101 is held until the listener has dialed the rendezvous, as the
// service does), HTTP request/response frames on the control channel and over
// a rendezvous socket above the 64 kB body / 32 kB header limits, token
// renewal frames, close code 1008 when a listener's token expires
// unrenewed, 502 when no listener is connected and 504 after the request
// deadline. It runs plain ws/http on loopback unless TLS is asked for.
package relaytest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// MaxListeners is the service's limit of concurrent listeners per hybrid
// connection.
const MaxListeners = 25

// Options configures a test relay. The zero value is usable.
type Options struct {
	// Addr is the TCP address to listen on; default "127.0.0.1:0".
	Addr string
	// TLS serves https/wss with a certificate from a CA made for this
	// server: Go clients use Server.ClientTLSConfig, other programs trust
	// Server.CACertPEM (Node: NODE_EXTRA_CA_CERTS). The certificate is valid
	// for 127.0.0.1, localhost and DNSNames.
	TLS bool
	// DNSNames are further names the TLS certificate covers, such as a
	// namespace host (contoso.servicebus.windows.net) that a client maps to
	// loopback to use the namespace form of the relay's URLs.
	DNSNames []string
	// HybridConnections are created at start (with client authorization
	// required). Default: one named "hc".
	HybridConnections []string
	// RequestTimeout is the HTTP-mode deadline after which the sender gets
	// 504 (default 60 s, as the service).
	RequestTimeout time.Duration
	// RendezvousTimeout is how long a sender waits for the listener to dial
	// the rendezvous (default 30 s).
	RendezvousTimeout time.Duration
	// Logger receives the relay's own logs; nil discards.
	Logger *slog.Logger
}

// Server is a running test relay.
type Server struct {
	// URL is the relay's base URL, "http://127.0.0.1:port" (https with TLS).
	URL string
	// Host is "127.0.0.1:port", what relay.ParseNamespace takes.
	Host string

	hostNoPort string
	tls        bool
	ca         *testCA
	opts       Options
	log        *slog.Logger
	hs         *httptest.Server
	now        func() time.Time

	mu             sync.Mutex
	hcs            map[string]*hybridConn
	rules          map[string]rule
	bearer         map[string]bearerGrant
	pending        map[string]*rendezvous
	refuseRenewals bool

	ignorePings atomic.Bool
	pings       atomic.Int64
	streamPings atomic.Int64
	listens     atomic.Int64
	renewals    atomic.Int64
	requests    atomic.Int64
	rvReqs      atomic.Int64
	emptyFrames atomic.Int64
}

type bearerGrant struct {
	rule
	expires time.Time
}

type hybridConn struct {
	name       string
	clientAuth bool
	rules      map[string]rule
	listeners  map[*listenerConn]struct{}
}

// NewServer starts a test relay and panics if it cannot, like
// httptest.NewServer. Use Start for an error instead.
func NewServer(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic(err)
	}
	return s
}

// Start starts a test relay.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if len(opts.HybridConnections) == 0 {
		opts.HybridConnections = []string{"hc"}
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	if opts.RendezvousTimeout == 0 {
		opts.RendezvousTimeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", opts.Addr, err)
	}
	s := &Server{
		opts: opts, log: log, tls: opts.TLS, now: time.Now,
		hcs: map[string]*hybridConn{}, rules: map[string]rule{}, bearer: map[string]bearerGrant{},
		pending: map[string]*rendezvous{},
	}
	for _, name := range opts.HybridConnections {
		s.AddHybridConnection(name, true)
	}
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	_ = s.hs.Listener.Close()
	s.hs.Listener = ln
	s.hs.Config.ErrorLog = nil
	if opts.TLS {
		if s.ca, err = newTestCA(opts.DNSNames); err != nil {
			_ = ln.Close()
			return nil, err
		}
		s.hs.TLS = &tls.Config{Certificates: []tls.Certificate{s.ca.serving}, MinVersion: tls.VersionTLS12}
		s.hs.StartTLS()
	} else {
		s.hs.Start()
	}
	s.URL = s.hs.URL
	s.Host = ln.Addr().String()
	s.hostNoPort, _, _ = net.SplitHostPort(s.Host)
	return s, nil
}

// Close drops every connection and stops the relay.
func (s *Server) Close() {
	s.DropListeners("")
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// Namespace is the relay as package relay addresses it (with Insecure set
// unless the server runs TLS).
func (s *Server) Namespace() relay.Namespace { return relay.Namespace{Host: s.Host} }

// ClientTLSConfig trusts the server's CA (TLS servers only).
func (s *Server) ClientTLSConfig() *tls.Config {
	if !s.tls {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.cert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// CACertPEM is the PEM certificate of the CA that issued the server's
// certificate (TLS servers only), for clients that are not Go programs.
func (s *Server) CACertPEM() []byte {
	if !s.tls {
		return nil
	}
	return s.ca.pem
}

// AddHybridConnection creates an entity. With clientAuth false, HTTP-mode
// and WebSocket senders need no token (the entity's "requires client
// authorization" switch).
func (s *Server) AddHybridConnection(name string, clientAuth bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(strings.Trim(name, "/"))
	if _, ok := s.hcs[key]; ok {
		s.hcs[key].clientAuth = clientAuth
		return
	}
	s.hcs[key] = &hybridConn{name: key, clientAuth: clientAuth, rules: map[string]rule{}, listeners: map[*listenerConn]struct{}{}}
}

// DeleteHybridConnection removes an entity; its listeners are closed with
// 1001, as the service does, and reconnects get 404.
func (s *Server) DeleteHybridConnection(name string) {
	s.mu.Lock()
	hc := s.hcs[strings.ToLower(name)]
	delete(s.hcs, strings.ToLower(name))
	var ls []*listenerConn
	if hc != nil {
		for l := range hc.listeners {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.drop(websocket.StatusGoingAway, "hybrid connection deleted")
	}
}

// AddRule adds a namespace-level SAS rule.
func (s *Server) AddRule(name, key string, rights ...Right) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules[name] = rule{key: key, rights: rights}
}

// AddEntityRule adds a SAS rule on one hybrid connection.
func (s *Server) AddEntityRule(hc, name, key string, rights ...Right) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hcs[strings.ToLower(hc)]
	if !ok {
		return fmt.Errorf("no hybrid connection %q", hc)
	}
	h.rules[name] = rule{key: key, rights: rights}
	return nil
}

// NewRule mints a namespace-level rule with a random 256-bit key and
// returns its name and key.
func (s *Server) NewRule(rights ...Right) (name, key string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	var n [4]byte
	_, _ = rand.Read(n[:])
	names := make([]string, len(rights))
	for i, r := range rights {
		names[i] = strings.ToLower(string(r))
	}
	name = strings.Join(names, "-") + "-" + hex.EncodeToString(n[:])
	key = base64.StdEncoding.EncodeToString(b[:])
	s.AddRule(name, key, rights...)
	return name, key
}

// ConnectionString mints a rule with rights and returns a connection string
// for it and the hybrid connection.
func (s *Server) ConnectionString(hc string, rights ...Right) string {
	name, key := s.NewRule(rights...)
	return relay.Namespace{Host: s.Host, KeyName: name, Key: key, EntityPath: hc}.ConnectionString()
}

// AddBearerToken makes the relay accept token (an Entra ID stand-in) with
// the given rights until expires (zero: an hour).
func (s *Server) AddBearerToken(token string, expires time.Time, rights ...Right) {
	if expires.IsZero() {
		expires = time.Now().Add(time.Hour)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bearer[token] = bearerGrant{rule: rule{rights: rights}, expires: expires}
}

// RefuseRenewals makes the relay reject renewToken frames (closing the
// channel with 1008, as the service does when validation fails).
func (s *Server) RefuseRenewals(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseRenewals = refuse
}

// IgnorePings makes the relay stop answering pings on every socket (control
// channels and relayed streams), like a half-open connection where nothing
// comes back.
func (s *Server) IgnorePings(ignore bool) { s.ignorePings.Store(ignore) }

// DropListeners cuts the control channels of hc's listeners (all entities
// when hc is empty) without a close handshake, like a network failure, and
// returns how many it cut.
func (s *Server) DropListeners(hc string) int {
	s.mu.Lock()
	var ls []*listenerConn
	for name, h := range s.hcs {
		if hc != "" && name != strings.ToLower(hc) {
			continue
		}
		for l := range h.listeners {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.drop(-1, "")
	}
	return len(ls)
}

// ListenerCount is the number of connected listeners on hc (handshake done).
func (s *Server) ListenerCount(hc string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if h, ok := s.hcs[strings.ToLower(hc)]; ok {
		for l := range h.listeners {
			if l.ready {
				n++
			}
		}
	}
	return n
}

// ListenerIDs lists the tracking ids of hc's connected listeners.
func (s *Server) ListenerIDs(hc string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if h, ok := s.hcs[strings.ToLower(hc)]; ok {
		for l := range h.listeners {
			ids = append(ids, l.id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Stats counts what the relay did.
type Stats struct {
	ListenAttempts     int64 // listener handshakes, refused ones included
	Renewals           int64 // accepted renewToken frames
	Pings              int64 // WebSocket pings on control channels
	StreamPings        int64 // WebSocket pings on relayed streams (either end)
	Requests           int64 // HTTP-mode requests relayed
	RendezvousRequests int64 // of which over a rendezvous socket
	EmptyFrames        int64 // empty binary frames a listener sent outside a response (tolerated)
}

// Stats returns counters since start.
func (s *Server) Stats() Stats {
	return Stats{ListenAttempts: s.listens.Load(), Renewals: s.renewals.Load(), Pings: s.pings.Load(), StreamPings: s.streamPings.Load(), Requests: s.requests.Load(), RendezvousRequests: s.rvReqs.Load(), EmptyFrames: s.emptyFrames.Load()}
}

// findEntity resolves the longest registered hybrid connection name that
// prefixes path (paths may carry a suffix after the name). Holding s.mu is
// required.
func (s *Server) findEntity(path string) (*hybridConn, string) {
	p := strings.Trim(path, "/")
	lower := strings.ToLower(p)
	var best *hybridConn
	for name, h := range s.hcs {
		if (lower == name || strings.HasPrefix(lower, name+"/")) && (best == nil || len(name) > len(best.name)) {
			best = h
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, p[len(best.name):]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, wire.PathPrefix); ok {
		switch r.URL.Query().Get(wire.ParamAction) {
		case wire.ActionListen:
			s.serveListen(w, r, rest)
		case wire.ActionConnect:
			s.serveConnect(w, r, rest)
		case wire.ActionAccept:
			s.serveAccept(w, r)
		case wire.ActionRequest:
			s.serveRequestRendezvous(w, r)
		default:
			fail(w, http.StatusNotFound, "unknown sb-hc-action")
		}
		return
	}
	s.serveRelayedHTTP(w, r)
}

// fail answers a handshake the way the service does: the status with a
// description as the reason phrase.
func fail(w http.ResponseWriter, status int, desc string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s TrackingId:%s\n", desc, newID())
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pickListener chooses a listener at random, as the service spreads
// connections "in random order". Holding s.mu is required.
func pickListener(h *hybridConn) *listenerConn {
	var ready []*listenerConn
	for l := range h.listeners {
		if l.ready {
			ready = append(ready, l)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	return ready[mrand.IntN(len(ready))]
}

// streamAccept are the options of relayed-stream sockets: pings count and
// obey IgnorePings (the relay answers them; they are not forwarded), and
// subprotocol, when not empty, is echoed if the client offered it.
func (s *Server) streamAccept(subprotocol string) *websocket.AcceptOptions {
	o := &websocket.AcceptOptions{OnPingReceived: func(context.Context, []byte) bool {
		s.streamPings.Add(1)
		return !s.ignorePings.Load()
	}}
	if subprotocol != "" {
		o.Subprotocols = []string{subprotocol}
	}
	return o
}

func (s *Server) wsScheme() string {
	if s.tls {
		return "wss"
	}
	return "ws"
}

var errRejected = errors.New("listener rejected the connection")
