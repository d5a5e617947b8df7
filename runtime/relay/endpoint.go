package relay

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// endpoint is what listener and sender share: where the hybrid connection is
// and how to authenticate to it.
type endpoint struct {
	host     string
	hc       string
	cred     Credential
	insecure bool
	client   *http.Client
	tokens   tokenCache
}

func newEndpoint(ns Namespace, hc string, cred Credential, insecure bool, tlsConf *tls.Config) *endpoint {
	if hc == "" {
		hc = ns.EntityPath
	}
	if cred == nil {
		cred = ns.Credential()
	}
	if tlsConf == nil {
		// Azure Relay's front ends prefer P-384; offering it first saves a
		// HelloRetryRequest round trip on every cold dial (measured by
		// philsphicas/aztunnel).
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP384, tls.X25519, tls.CurveP256}}
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	return &endpoint{
		host:     ns.Host,
		hc:       strings.Trim(hc, "/"),
		cred:     cred,
		insecure: insecure,
		client:   &http.Client{Transport: tr},
		tokens:   tokenCache{cred: cred},
	}
}

// validateEndpoint checks the fields listener and sender configs share.
func validateEndpoint(ns Namespace, hc string, cred Credential) error {
	if ns.Host == "" {
		return errors.New("Namespace: required (use ParseNamespace)")
	}
	if hc == "" && ns.EntityPath == "" {
		return errors.New("HybridConnection: required (or an EntityPath in the connection string)")
	}
	name := hc
	if name == "" {
		name = ns.EntityPath
	}
	for _, r := range strings.Trim(name, "/") {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r)) {
			return fmt.Errorf("HybridConnection: %q may hold only letters, digits, '-', '_', '.' and '/'", name)
		}
	}
	if cred == nil && ns.Credential() == nil {
		return errors.New("Credential: required (a SAS key, a connection string with one, or an Entra ID credential)")
	}
	return nil
}

func (e *endpoint) resource() string { return ResourceURI(e.host, e.hc) }

func (e *endpoint) scheme(ws bool) string {
	switch {
	case ws && e.insecure:
		return "ws"
	case ws:
		return "wss"
	case e.insecure:
		return "http"
	}
	return "https"
}

// wsURL is wss://{ns}/$hc/{hc}{suffix}?{query}&sb-hc-action=...
func (e *endpoint) wsURL(suffix, rawQuery string, params url.Values) string {
	u := url.URL{Scheme: e.scheme(true), Host: e.host, Path: wire.PathPrefix + e.hc + suffix}
	q := params.Encode()
	if rawQuery != "" {
		q = rawQuery + "&" + q
	}
	u.RawQuery = q
	return u.String()
}

// authHeader returns a header carrying a token, as the SDKs send it.
func (e *endpoint) authHeader(ctx context.Context) (http.Header, error) {
	tok, err := e.tokens.get(ctx, e.resource())
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(wire.HeaderAuthorization, tok.Value)
	return h, nil
}

// checkScheme refuses plain-text addresses unless Insecure was configured.
func (e *endpoint) checkScheme(u string) error {
	if e.insecure {
		return nil
	}
	if !strings.HasPrefix(strings.ToLower(u), "wss://") && !strings.HasPrefix(strings.ToLower(u), "https://") {
		return fmt.Errorf("refusing non-TLS relay address %q (set Insecure only for a local test relay)", redactURL(u))
	}
	return nil
}

// dial opens a WebSocket, offering subprotocols, and classifies a failure:
// a handshake refused by the relay is a *StatusError, a transport failure
// an *UnreachableError.
func (e *endpoint) dial(ctx context.Context, op, u string, h http.Header, subprotocols ...string) (*websocket.Conn, error) {
	if err := e.checkScheme(u); err != nil {
		return nil, err
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: e.client, HTTPHeader: h, Subprotocols: subprotocols})
	if err == nil {
		return ws, nil
	}
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, newStatusError(op, resp.StatusCode, statusDescription(resp))
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("cannot %s relay: %w", op, ctx.Err())
	}
	return nil, &UnreachableError{Host: e.host, Err: err}
}

// statusDescription is the reason phrase the relay put after the status code
// (it carries the tracking id), or the start of the body.
func statusDescription(resp *http.Response) string {
	d := strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode)))
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if s := strings.TrimSpace(string(b)); s != "" && (d == "" || d == http.StatusText(resp.StatusCode)) {
			d = s
		}
	}
	return d
}

func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable>"
	}
	p.RawQuery = ""
	return p.String()
}

// tokenCache reuses a token until shortly before it expires.
type tokenCache struct {
	cred   Credential
	mu     sync.Mutex
	res    string
	tok    Token
	issued time.Time
}

func (c *tokenCache) get(ctx context.Context, resource string) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.res == resource && c.tok.Value != "" && (c.tok.ExpiresOn.IsZero() || time.Until(c.tok.ExpiresOn) > renewMargin(c.issued, c.tok.ExpiresOn)) {
		return c.tok, nil
	}
	t, err := c.cred.Token(ctx, resource)
	if err != nil {
		return Token{}, fmt.Errorf("cannot get relay token: %w", err)
	}
	c.res, c.tok, c.issued = resource, t, time.Now()
	return t, nil
}

// fresh always asks the credential (renewal must send a new token).
func (c *tokenCache) fresh(ctx context.Context, resource string) (Token, error) {
	c.mu.Lock()
	c.tok = Token{}
	c.mu.Unlock()
	return c.get(ctx, resource)
}

// renewMargin is how long before expiry a token is replaced: five minutes,
// or a quarter of its lifetime for short-lived tokens.
func renewMargin(issued, expires time.Time) time.Duration {
	return min(5*time.Minute, expires.Sub(issued)/4)
}

// newID returns a random tracking id in GUID form, like the SDKs send.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// relayAddr is the net.Addr of relayed connections.
type relayAddr struct{ s string }

func (relayAddr) Network() string  { return "relay" }
func (a relayAddr) String() string { return a.s }

var _ net.Addr = relayAddr{}
