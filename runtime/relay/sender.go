package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Namespace is where the hybrid connection lives (see ParseNamespace).
	Namespace Namespace
	// HybridConnection is the entity name; defaults to Namespace.EntityPath.
	HybridConnection string
	// Credential needs the Send right; defaults to the SAS rule of a
	// connection string.
	Credential Credential
	// Insecure allows ws:// and http:// (a local test relay). Never set it
	// for Azure.
	Insecure bool
	// TLSConfig overrides the TLS client configuration.
	TLSConfig *tls.Config
	// ConnectTimeout bounds opening a relayed WebSocket (default 70 s, as
	// the .NET and Java SDKs; the relay can take seconds to rendezvous).
	ConnectTimeout time.Duration
	// Logger receives debug logs; nil discards.
	Logger *slog.Logger
}

// Validate reports the first bad field.
func (c SenderConfig) Validate() error {
	if err := validateEndpoint(c.Namespace, c.HybridConnection, c.Credential); err != nil {
		return fmt.Errorf("relay config: %w", err)
	}
	if c.ConnectTimeout < 0 {
		return errors.New("relay config: ConnectTimeout: negative")
	}
	return nil
}

// Sender talks to the listeners of one hybrid connection. It is an
// http.RoundTripper for the relay's HTTP mode (each request is relayed on
// its own, answered within the relay's 60 s deadline), and it dials relayed
// WebSockets for streams (Dial, StreamTransport), which have no deadline.
//
// Requests keep their path and query: http://anything/v1/status reaches the
// listener's http.Server as /v1/status through either transport.
type Sender struct {
	cfg    SenderConfig
	ep     *endpoint
	log    *slog.Logger
	http   *http.Transport
	stream *http.Transport
}

var _ http.RoundTripper = (*Sender)(nil)

// NewSender validates cfg and returns a Sender.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 70 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{cfg: cfg, ep: newEndpoint(cfg.Namespace, cfg.HybridConnection, cfg.Credential, cfg.Insecure, cfg.TLSConfig), log: log}
	s.http = s.ep.client.Transport.(*http.Transport).Clone()
	s.stream = &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return s.Dial(ctx) },
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return s, nil
}

// NewTransport returns an http.RoundTripper over the relay's HTTP mode. An
// invalid cfg yields a transport whose every request fails with the
// validation error; use NewSender to see it up front.
func NewTransport(cfg SenderConfig) http.RoundTripper {
	s, err := NewSender(cfg)
	if err != nil {
		return errTransport{err}
	}
	return s
}

type errTransport struct{ err error }

func (t errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, t.err }

// Dial opens a relayed WebSocket to a listener and returns it as a byte
// stream (binary messages).
func Dial(ctx context.Context, cfg SenderConfig) (net.Conn, error) {
	s, err := NewSender(cfg)
	if err != nil {
		return nil, err
	}
	return s.Dial(ctx)
}

// Dial opens a relayed WebSocket to a listener and returns it as a byte
// stream. The listener sees it as a *Conn from Accept.
func (s *Sender) Dial(ctx context.Context) (net.Conn, error) {
	ws, err := s.DialWebSocket(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	// The stream lives beyond ctx, which bounded only the connect.
	return &Conn{Conn: newStream(ws), local: relayAddr{s: "sender"}, remote: relayAddr{s: s.ep.host + "/" + s.ep.hc}}, nil
}

// DialWebSocket opens a relayed WebSocket. path (with an optional query) is
// appended after the hybrid connection name and reaches the listener as
// ConnectRequest.Path; header goes along as connect headers. Subprotocols
// offered in header's Sec-WebSocket-Protocol are negotiated: the result's
// Subprotocol is the one the listener accepted.
func (s *Sender) DialWebSocket(ctx context.Context, path string, header http.Header) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	auth, err := s.ep.authHeader(ctx)
	if err != nil {
		return nil, err
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(wire.HeaderAuthorization, auth.Get(wire.HeaderAuthorization))
	var subprotocols []string
	for k, vs := range h {
		if !strings.EqualFold(k, "Sec-WebSocket-Protocol") {
			continue
		}
		for _, v := range vs {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					subprotocols = append(subprotocols, p)
				}
			}
		}
		delete(h, k)
	}
	suffix, rawQuery, _ := strings.Cut(path, "?")
	if suffix != "" && !strings.HasPrefix(suffix, "/") {
		suffix = "/" + suffix
	}
	u := s.ep.wsURL(suffix, rawQuery, url.Values{wire.ParamAction: {wire.ActionConnect}})
	ws, err := s.ep.dial(ctx, "connect", u, h, subprotocols...)
	if err != nil {
		s.log.Debug("relay connect failed", "host", s.ep.host, "hybrid_connection", s.ep.hc, "err", err)
		return nil, err
	}
	ws.SetReadLimit(-1)
	return ws, nil
}

// RoundTrip relays one HTTP request in the relay's HTTP mode. The relay's
// own refusals come back as errors (*StatusError wrapping ErrNoListener,
// ErrUnauthorized, ErrNotFound, ErrTimeout); transport failures as
// *UnreachableError. Responses from the application, whatever their status,
// come back as responses.
func (s *Sender) RoundTrip(req *http.Request) (*http.Response, error) {
	auth, err := s.ep.authHeader(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL.Scheme = s.ep.scheme(false)
	out.URL.Host = s.ep.host
	out.URL.Path = "/" + s.ep.hc + "/" + strings.TrimPrefix(req.URL.Path, "/")
	if req.URL.RawPath != "" {
		out.URL.RawPath = "/" + s.ep.hc + "/" + strings.TrimPrefix(req.URL.RawPath, "/")
	}
	out.Host = ""
	out.Header.Set(wire.HeaderAuthorization, auth.Get(wire.HeaderAuthorization))
	resp, err := s.http.RoundTrip(out)
	if err != nil {
		if req.Context().Err() != nil {
			return nil, err
		}
		return nil, &UnreachableError{Host: s.ep.host, Err: err}
	}
	if fromRelay(resp, s.ep.host) {
		defer resp.Body.Close()
		err := newStatusError("request", resp.StatusCode, statusDescription(resp))
		s.log.Debug("relay refused request", "method", req.Method, "path", req.URL.Path, "err", err)
		return nil, err
	}
	resp.Request = req
	return resp, nil
}

// StreamTransport returns an http.RoundTripper that speaks HTTP/1.1 over
// relayed WebSockets (pooled and reused). Use it for long-lived requests:
// following logs, server-sent events, WebSocket upgrades. Connection
// failures come back with the same typed errors as RoundTrip.
func (s *Sender) StreamTransport() http.RoundTripper { return streamTransport{s} }

type streamTransport struct{ s *Sender }

func (t streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme = "http"
	out.URL.Host = t.s.ep.host
	out.Host = ""
	resp, err := t.s.stream.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	resp.Request = req
	return resp, nil
}

// CloseIdleConnections closes pooled connections of both transports.
func (s *Sender) CloseIdleConnections() {
	s.http.CloseIdleConnections()
	s.stream.CloseIdleConnections()
}

// fromRelay reports whether an HTTP-mode response is the relay's own
// refusal rather than a listener's answer. The relay adds a Via header to
// everything a listener sends; "Whether the response originates from the
// service or from the listener can be identified through presence of the
// Via header. If the header is present, the response is from the listener"
// (protocol document, "HTTP request protocol"; the .NET SDK's live tests
// assert it names the namespace, HybridRequestTests.RequestHandlerErrors).
// So an application's own 401 or 404, from a listener in any language, is
// a response. A Via that does not name the namespace (a proxy's) does not
// count.
func fromRelay(resp *http.Response, host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.Contains(strings.ToLower(strings.Join(resp.Header.Values("Via"), ",")), strings.ToLower(host)) {
		return false
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}
