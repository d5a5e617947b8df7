// Package connector is the on-premises side of the gateway: a Go program
// imports it to become a connector.
//
// A Client keeps one session with the gateway (a WebSocket at
// sessionproto.ConnectPath, authenticated with an access token from the idp) and
// reconnects with exponential backoff and full jitter when it drops. Over
// the session it sends to the cloud (Send waits for the gateway's ack, which
// comes once the bus has the message), manages topic subscriptions, renews
// its token before expiry and obtains short-lived SAS URLs for its own
// Storage Queue.
//
// Receiving never depends on the session being perfect: the client drains
// its queue on every (re)connect, again whenever the gateway nudges it, and on
// a slow safety poll (SafetyPoll, default 5 minutes) in case a nudge was
// lost. A message is deleted only after the handler returned nil; while a
// handler runs, the message's visibility is extended through the gateway; a
// failed message comes back after a growing delay; a message dequeued more
// than MaxDequeueCount times, or one that is not a valid envelope, is handed
// to the gateway's connector error queue and removed. Handlers get the
// stable message id (Message.ID) and should deduplicate on it: delivery is
// at least once. The client also skips ids it handled recently, in memory,
// and with Config.DedupFile across restarts too.
package connector

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/calls"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/seen"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Message is a message from the cloud as a handler sees it.
type Message struct {
	// ID is the message id, stable across redeliveries: deduplicate on it.
	ID            string
	CorrelationID string
	ReplyTo       string
	// Kind is envelope.KindTargeted or envelope.KindBroadcast.
	Kind  envelope.Kind
	Topic string
	// From is the cloud service that sent the message.
	From        envelope.Identity
	Headers     map[string]string
	ContentType string
	// Body is the payload, fetched from Blob storage if it was claim-checked.
	Body []byte
	// DeliveryCount is how often the queue has handed this message out (1
	// on first delivery), as botecloud.Message.DeliveryCount counts on the
	// cloud's side.
	DeliveryCount int
	// Deadline is set when the message is a Call: the caller gives up
	// then, the handler's context ends then, and Reply carries it back.
	Deadline time.Time
	// ExpiresAt is the message's time to live as an instant (zero: none).
	ExpiresAt time.Time
}

// Handler handles messages from the cloud. Returning nil deletes the
// message; an error makes it come back later. It has the shape of
// botecloud.Handler, its counterpart on the cloud's side.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// TokenSource supplies access tokens; *clientauth.TokenSource is one.
type TokenSource interface {
	TokenWithExpiry(ctx context.Context) (clientauth.Token, error)
	Invalidate()
}

// Config configures a Client.
type Config struct {
	// GatewayURL is the gateway's base URL (https://gateway.example.com);
	// the session goes to its sessionproto.ConnectPath over ws(s).
	GatewayURL string
	// WorkerURL is GatewayURL's name from before the rename, read when
	// GatewayURL is empty (New logs a warning).
	//
	// Deprecated: use GatewayURL; WorkerURL goes in a later release.
	WorkerURL string
	// Tenant and Connector are this connector's ids.
	Tenant, Connector string
	// TokenURL and Key obtain access tokens (ES256 client assertions).
	// Alternatively set Tokens.
	TokenURL string
	Key      *ecdsa.PrivateKey
	Tokens   TokenSource

	// Handler receives messages from the cloud. A handler made after the
	// client (the agent sends through the client it handles messages
	// for) registers with Client.Handle instead; Run needs one of the two.
	Handler Handler

	// SafetyPoll is how often the queue is read without a nudge (default
	// 5m; the nudge makes this a backstop, so it is slow on purpose).
	SafetyPoll time.Duration
	// Visibility is how long a received message stays hidden before it is
	// extended (default 60s; extended at half of it while a handler runs).
	Visibility time.Duration
	// MaxDequeueCount: a message handed out more often is poison (default 5).
	MaxDequeueCount int
	// RetryDelay is how long a message whose handler failed stays hidden
	// before it is handed out again, doubling with each further dequeue up
	// to 5 minutes (default 5s; whole seconds, at least 1s: Storage Queue
	// visibility is counted in seconds).
	RetryDelay time.Duration
	// Concurrency is how many handlers run at once (default 4).
	Concurrency int
	// MinBackoff and MaxBackoff bound reconnect delays (defaults 250ms,
	// 30s): full jitter, the ceiling doubling from MinBackoff per failed
	// attempt. For the first FastReconnect after the session was lost
	// (default 1m) the ceiling stays at or below FastMaxBackoff (2s), so a
	// fleet finds a restarted gateway within about 2 s of it being ready,
	// its attempts spread evenly over those 2 s; a longer outage backs off
	// up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	FastReconnect          time.Duration
	// DrainTimeout is how long handlers may go on after Run's context ends
	// before their contexts are cancelled (default 30s).
	DrainTimeout time.Duration
	// DedupFile, if set, turns on durable dedup: the id of every message
	// handled is appended to this local file (and synced) before the
	// message is deleted, and a message whose id is there is deleted
	// without calling the handler, also after a crash and restart. It costs
	// one local write and fsync per message and no storage request. Off
	// (in-memory dedup only) when empty.
	DedupFile string
	// DedupSize is how many ids DedupFile keeps (default 10,000): a
	// redelivery after that many newer messages is not recognised.
	DedupSize int
	// MaxClaimBytes bounds a claim-checked body, and a decompressed one
	// (default 100 MiB).
	MaxClaimBytes int64
	// CompressAbove, when positive, gzips bodies longer than this many
	// bytes before sending (kept only when smaller; package payload).
	CompressAbove int
	// CloudKey, if set, is the cloud services' public key (the public half
	// of botecloud.Config.DecryptionKey): every body sent to the cloud is
	// encrypted to it end to end, so the gateway, the bus and storage carry
	// ciphertext.
	CloudKey *ecdh.PublicKey
	// DecryptionKey opens bodies the cloud encrypted to this connector
	// (default: Key, the connector's registered key, as ECDH). Without
	// either, an encrypted message goes to the error queue.
	DecryptionKey *ecdh.PrivateKey
	// HTTPClient is used for the WebSocket, queue and blob requests.
	HTTPClient *http.Client
	Logger     *slog.Logger

	deprecated []envflag.Deprecation // old names ConfigFromEnv read; New warns
}

// gatewayURL returns the gateway's URL and the field it came from:
// GatewayURL, or the deprecated WorkerURL when only that is set.
func (c Config) gatewayURL() (field, url string) {
	if c.GatewayURL == "" && c.WorkerURL != "" {
		return "WorkerURL", c.WorkerURL
	}
	return "GatewayURL", c.GatewayURL
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	field, gatewayURL := c.gatewayURL()
	u, err := url.Parse(gatewayURL)
	switch {
	case gatewayURL == "" || err != nil || u.Host == "" || !(u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "ws" || u.Scheme == "wss"):
		return fmt.Errorf("connector config: %s %q must be an absolute http(s) URL", field, gatewayURL)
	case c.Tokens == nil && (c.TokenURL == "" || c.Key == nil):
		return errors.New("connector config: TokenURL and Key (or Tokens) are required")
	case c.SafetyPoll < 0, c.Visibility < 0, c.MinBackoff < 0, c.MaxBackoff < 0, c.FastReconnect < 0, c.MaxDequeueCount < 0, c.Concurrency < 0, c.MaxClaimBytes < 0, c.DrainTimeout < 0, c.DedupSize < 0:
		return errors.New("connector config: SafetyPoll, Visibility, MinBackoff, MaxBackoff, FastReconnect, MaxDequeueCount, Concurrency, MaxClaimBytes, DrainTimeout and DedupSize must not be negative")
	case c.CompressAbove < 0:
		return fmt.Errorf("connector config: CompressAbove %d is negative", c.CompressAbove)
	case c.CloudKey != nil && c.CloudKey.Curve() != ecdh.P256():
		return errors.New("connector config: CloudKey must be a P-256 key")
	case c.Visibility != 0 && c.Visibility < 2*time.Second:
		return fmt.Errorf("connector config: Visibility %s must be at least 2s", c.Visibility)
	case c.RetryDelay < 0 || c.RetryDelay != 0 && (c.RetryDelay < time.Second || c.RetryDelay%time.Second != 0):
		return fmt.Errorf("connector config: RetryDelay %s must be whole seconds, at least 1s", c.RetryDelay)
	}
	if err := ids.Validate("tenant", c.Tenant); err != nil {
		return fmt.Errorf("connector config: Tenant: %w", err)
	}
	if err := ids.Validate("connector", c.Connector); err != nil {
		return fmt.Errorf("connector config: Connector: %w", err)
	}
	return nil
}

func (c *Config) defaults() {
	setDefault(&c.SafetyPoll, 5*time.Minute)
	setDefault(&c.Visibility, 60*time.Second)
	setDefault(&c.MaxDequeueCount, 5)
	setDefault(&c.RetryDelay, 5*time.Second)
	setDefault(&c.Concurrency, 4)
	setDefault(&c.MinBackoff, 250*time.Millisecond)
	setDefault(&c.MaxBackoff, 30*time.Second)
	setDefault(&c.FastReconnect, time.Minute)
	setDefault(&c.MaxClaimBytes, 100<<20)
	setDefault(&c.DrainTimeout, 30*time.Second)
	setDefault(&c.DedupSize, 10_000)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if c.DecryptionKey == nil && c.Key != nil {
		c.DecryptionKey, _ = c.Key.ECDH() // nil for a key crypto/ecdh cannot use; encrypted messages then fail to open
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// ErrNotConnected reports a request made while there is no session.
var ErrNotConnected = errors.New("not connected to the gateway")

// Client is a connector. Run it; Send, Subscribe and Unsubscribe may be
// called from any goroutine while it runs.
type Client struct {
	cfg    Config
	log    *slog.Logger
	tokens TokenSource
	wsURL  string

	mu      sync.Mutex
	sess    *session
	changed chan struct{} // closed and replaced whenever sess changes

	wake    chan struct{}               // nudges, connects: read the queue now
	deliver func(sessionproto.Delivery) // the receiver's; set before the first session
	recent  *seen.Set
	durable *seen.File // nil unless Config.DedupFile is set; Run opens it
	running atomic.Bool
	calls   calls.Set[*Message]
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	c := &Client{cfg: cfg, log: cfg.Logger.With("tenant", cfg.Tenant, "connector", cfg.Connector),
		changed: make(chan struct{}), wake: make(chan struct{}, 1), recent: seen.New(10_000, time.Hour)}
	c.tokens = cfg.Tokens
	if c.tokens == nil {
		ts, err := clientauth.NewTokenSource(clientauth.TokenSourceConfig{
			TokenURL: cfg.TokenURL, ClientID: registry.ClientID(cfg.Tenant, cfg.Connector), Key: cfg.Key, HTTPClient: cfg.HTTPClient,
		})
		if err != nil {
			return nil, err
		}
		c.tokens = ts
	}
	field, gatewayURL := cfg.gatewayURL()
	if field != "GatewayURL" {
		cfg.deprecated = append(cfg.deprecated, envflag.Deprecation{Old: "connector.Config.WorkerURL", New: "connector.Config.GatewayURL"})
	}
	envflag.Warn(c.log, cfg.deprecated)
	u, _ := url.Parse(gatewayURL)
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + sessionproto.ConnectPath
	q := u.Query()
	// The receiver takes messages in frames, hidden for as long as one it
	// reads.
	q.Set(sessionproto.DeliverParam, strconv.Itoa(int(cfg.Visibility/time.Second)))
	u.RawQuery = q.Encode()
	c.wsURL = u.String()
	return c, nil
}

// Handle registers h as the Handler of the messages Run receives, for a
// handler made after the client because it sends through it. It must be
// called before Run.
func (c *Client) Handle(h Handler) {
	if c.running.Load() {
		panic("connector: Handle called after Run")
	}
	c.cfg.Handler = h
}

// Run keeps the session and receives messages until ctx ends. Handlers in
// flight get DrainTimeout to finish (their messages are deleted, or left
// for redelivery) before Run returns.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("connector: Run called twice")
	}
	defer c.running.Store(false)
	if c.cfg.Handler == nil {
		return errors.New("connector: no Handler: set Config.Handler or call Handle before Run")
	}
	if c.cfg.DedupFile != "" {
		f, err := seen.OpenFile(c.cfg.DedupFile, c.cfg.DedupSize)
		if err != nil {
			return fmt.Errorf("connector: cannot open dedup file: %w", err)
		}
		c.durable = f
		defer f.Close()
	}
	rx := newReceiver(ctx, c)
	c.deliver = rx.take
	done := make(chan struct{})
	go func() { defer close(done); rx.run(ctx) }()
	c.keepSession(ctx)
	<-done
	return nil
}

// Connected reports whether a session is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// WaitConnected blocks until a session is up or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	_, err := c.session(ctx)
	return err
}

// session returns the current session, waiting for one.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ch := c.sess, c.changed
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	close(c.changed)
	c.changed = make(chan struct{})
}

// Subscribe subscribes this connector to topic in its own tenant.
func (c *Client) Subscribe(ctx context.Context, topic string) error {
	_, err := c.request(ctx, sessionproto.Frame{Type: sessionproto.TypeSubscribe, Topic: topic})
	return err
}

// Unsubscribe ends this connector's subscription to topic.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	_, err := c.request(ctx, sessionproto.Frame{Type: sessionproto.TypeUnsubscribe, Topic: topic})
	return err
}

// request sends f over the session and waits for its reply, retrying on
// another session if this one drops or the gateway is going away.
func (c *Client) request(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	for {
		s, err := c.session(ctx)
		if err != nil {
			return sessionproto.Frame{}, err
		}
		reply, err := s.request(ctx, f)
		var perr *sessionproto.Error
		switch {
		case err == nil:
			return reply, nil
		case errors.As(err, &perr) && perr.Code != sessionproto.CodeUnavailable && perr.Code != sessionproto.CodeShuttingDown:
			return sessionproto.Frame{}, err
		case ctx.Err() != nil:
			return sessionproto.Frame{}, err
		}
		c.log.Debug("request interrupted; retrying", "type", f.Type, "err", err)
		if errors.As(err, &perr) {
			_ = retry.Sleep(ctx, c.cfg.MinBackoff)
		}
	}
}

// nudge asks the receiver to read the queue.
func (c *Client) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
