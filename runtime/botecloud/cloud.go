// Package botecloud is what a cloud service imports to talk to on-premises
// connectors through the gateway (the Go counterpart of the seed's
// EnableBote()).
//
// A Client sends to one connector (SendToConnector) or to every connector
// of a tenant subscribed to a topic (Broadcast) by putting envelopes on the
// "bote-connectors" queue, where the gateway routes them. Run receives what
// connectors sent from the "bote-cloud" queue and calls a Handler with a
// Message whose From is the identity the gateway stamped from the
// connector's verified token. The client trusts nothing else: the bus
// queues are writable only by the gateway and cloud services (Azure RBAC in
// the gateway stack), a message on "bote-cloud" that is not a connector
// message with a valid From is dead-lettered unhandled, and application
// headers can never carry identity (reserved names are refused on send and
// stripped of meaning on receipt). Reply answers a received message: it goes
// to the sending connector with CorrelationID set to the request's ID.
// Call sends and waits for the connector's reply; where the bus can create
// queues (bus.QueueManager), Run makes a reply queue of this process and
// the gateway sends replies to calls made here to it, so replicas of a
// service never receive each other's replies.
//
// Failure handling follows the service-bus convention (NServiceBus, Rebus):
// a failing handler is retried ImmediateRetries times in place, then the
// message is abandoned with a growing delay (DelayedRetryBase × n) up to
// DelayedRetries times, then dead-lettered to the error queue with the
// reason and the last error. Errors wrapped with Permanent skip the retries.
// Delayed retries are counted by the transport's delivery count, so a
// delivery lost to a crash or an expired lock also uses one up.
//
// Deduplication: delivery is at least once. The client remembers ids of
// messages it handled successfully (a bounded in-memory LRU with TTL,
// DedupSize entries for DedupTTL) and completes a repeat without calling
// the handler; a copy arriving while the first is still being handled is
// put back for later. The memory is per process: a duplicate delivered to
// another replica, or after a restart, or after DedupTTL, is handled again,
// so handlers with external effects still use Message.ID as an idempotency
// key.
//
// Long handlers keep their message locked: the client renews the lock every
// Lock/2 and cancels the handler's context if the lock is lost. Cancelling
// the context passed to Run stops receiving, lets in-flight handlers finish
// (up to DrainTimeout, then their contexts are cancelled) and returns.
package botecloud

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/internal/calls"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/seen"
)

// Bus is what the client needs from a bus driver (bus.Driver satisfies it).
type Bus interface {
	Send(ctx context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error
	Receive(ctx context.Context, queue string, max int, lock time.Duration) ([]*bus.Message, error)
	Complete(ctx context.Context, m *bus.Message) error
	Abandon(ctx context.Context, m *bus.Message, delay time.Duration) error
	DeadLetter(ctx context.Context, m *bus.Message, reason, description string) error
	RenewLock(ctx context.Context, m *bus.Message, lock time.Duration) error
}

// Config of a Client. Zero values take the documented defaults.
type Config struct {
	// Bus is the driver (required).
	Bus Bus
	// Service names this cloud service; it is stamped as From.Service on
	// everything it sends (required).
	Service string
	// SigningKey, if set, signs everything this service sends (see
	// envelope.Envelope.Sign): a gateway that holds the public key for
	// Service then accepts messages in this service's name only when they
	// carry a valid signature. An EC P-256 private key.
	SigningKey *ecdsa.PrivateKey
	// GatewayKeys, if set, are the gateway's public keys (several while one
	// is rotated): a message on the cloud queue is handled only when the
	// gateway signed it (gateway --signing-key), so nothing else holding
	// send rights on that queue can pose as a connector. Without them the
	// send right (only the gateway's, by RBAC) is the only anchor.
	GatewayKeys []*ecdsa.PublicKey
	// WorkerKeys is GatewayKeys's name from before the rename, read when
	// GatewayKeys is empty (New logs a warning).
	//
	// Deprecated: use GatewayKeys; WorkerKeys goes in a later release.
	WorkerKeys []*ecdsa.PublicKey
	// CompressAbove, when positive, gzips bodies longer than this many
	// bytes (kept only when smaller); receivers inflate them (package
	// payload).
	CompressAbove int
	// ConnectorKey, if set, returns a connector's registered public key:
	// every message to one connector (SendToConnector, Call, Reply) is then
	// encrypted to it end to end, so the gateway, the bus and storage carry
	// ciphertext (package payload). A nil key with a nil error sends that
	// connector's messages in the clear. Broadcasts are never encrypted
	// (one message, many recipients).
	ConnectorKey func(ctx context.Context, tenant, connector string) (*ecdh.PublicKey, error)
	// DecryptionKey opens what connectors encrypted to this service
	// (connector.Config.CloudKey is its public half). Without it an
	// encrypted message goes to the error queue.
	DecryptionKey *ecdh.PrivateKey
	// RequireEncryption refuses a connector message (replies included)
	// whose body is not encrypted: it goes to the error queue as
	// "undecodable payload", never to the handler, so a connector left
	// without connector.Config.CloudKey is noticed at its first message
	// rather than sending in the clear. It needs DecryptionKey.
	RequireEncryption bool
	// MaxBodyBytes bounds a decompressed body (default 100 MiB).
	MaxBodyBytes int64
	// ConnectorsQueue (default bus.QueueConnectors) and CloudQueue (default
	// bus.QueueCloud).
	ConnectorsQueue, CloudQueue string
	// ImmediateRetries after a failed handler call, in place (default 3;
	// -1 for none).
	ImmediateRetries int
	// DelayedRetries after the immediate ones are used up (default 3; -1
	// for none), DelayedRetryBase × n apart (default 10s).
	DelayedRetries   int
	DelayedRetryBase time.Duration
	// Lock per received message (default 1m), renewed every Lock/2.
	Lock time.Duration
	// Concurrency is how many messages are handled at once (default 8).
	Concurrency int
	// PollMin and PollMax bound the wait between empty receives, which
	// doubles from PollMin up to PollMax (defaults 200ms, 5s).
	PollMin, PollMax time.Duration
	// DedupSize (default 10000) and DedupTTL (default 10m) bound the
	// handled-id memory.
	DedupSize int
	DedupTTL  time.Duration
	// DrainTimeout bounds how long Run waits for in-flight handlers after
	// its context is cancelled (default 30s).
	DrainTimeout time.Duration
	// WakeURL, if set, is the gateway's base URL: after each send the client
	// POSTs to its sessionproto.WakePath so a routing replica reads the
	// message now instead of at its next poll of bote-connectors, which is
	// then only a safety net. Best effort: a lost wake costs at most the
	// gateway's --route-poll-max. Not needed with Service Bus, whose receive
	// is a long poll.
	WakeURL string
	// WakeClient sends wakes (default: an http.Client with a 5s timeout).
	WakeClient *http.Client
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate reports the first missing or out-of-range field.
func (c Config) Validate() error {
	switch {
	case c.Bus == nil:
		return errors.New("botecloud config: Bus is required")
	case c.Service == "":
		return errors.New("botecloud config: Service is required")
	case c.WakeURL != "" && !isHTTPURL(c.WakeURL):
		return fmt.Errorf("botecloud config: WakeURL %q must be an http or https URL with a host", c.WakeURL)
	case c.ImmediateRetries < -1:
		return fmt.Errorf("botecloud config: ImmediateRetries %d is below -1", c.ImmediateRetries)
	case c.DelayedRetries < -1:
		return fmt.Errorf("botecloud config: DelayedRetries %d is below -1", c.DelayedRetries)
	case c.DelayedRetryBase < 0:
		return fmt.Errorf("botecloud config: DelayedRetryBase %s is negative", c.DelayedRetryBase)
	case c.Lock < 0 || (c.Lock > 0 && c.Lock < time.Second):
		return fmt.Errorf("botecloud config: Lock %s must be at least 1s", c.Lock)
	case c.Concurrency < 0:
		return fmt.Errorf("botecloud config: Concurrency %d is negative", c.Concurrency)
	case c.PollMin < 0 || c.PollMax < 0 || (c.PollMax > 0 && c.PollMin > c.PollMax):
		return fmt.Errorf("botecloud config: PollMin %s and PollMax %s must be positive with PollMin <= PollMax", c.PollMin, c.PollMax)
	case c.DedupSize < 0:
		return fmt.Errorf("botecloud config: DedupSize %d is negative", c.DedupSize)
	case c.DedupTTL < 0:
		return fmt.Errorf("botecloud config: DedupTTL %s is negative", c.DedupTTL)
	case c.DrainTimeout < 0:
		return fmt.Errorf("botecloud config: DrainTimeout %s is negative", c.DrainTimeout)
	case c.CompressAbove < 0:
		return fmt.Errorf("botecloud config: CompressAbove %d is negative", c.CompressAbove)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("botecloud config: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.RequireEncryption && c.DecryptionKey == nil:
		return errors.New("botecloud config: RequireEncryption needs a DecryptionKey")
	case c.DecryptionKey != nil && c.DecryptionKey.Curve() != ecdh.P256():
		return errors.New("botecloud config: DecryptionKey must be a P-256 key")
	case c.SigningKey != nil && c.SigningKey.Curve != elliptic.P256():
		return errors.New("botecloud config: SigningKey must be an EC P-256 key")
	case slices.Contains(c.GatewayKeys, nil):
		return errors.New("botecloud config: GatewayKeys holds a nil key")
	case slices.Contains(c.WorkerKeys, nil):
		return errors.New("botecloud config: WorkerKeys holds a nil key")
	}
	return (envelope.Identity{Service: c.Service}).Validate()
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.ConnectorsQueue == "" {
		c.ConnectorsQueue = bus.QueueConnectors
	}
	if c.CloudQueue == "" {
		c.CloudQueue = bus.QueueCloud
	}
	c.ImmediateRetries = retries(c.ImmediateRetries, 3)
	c.DelayedRetries = retries(c.DelayedRetries, 3)
	def(&c.DelayedRetryBase, 10*time.Second)
	def(&c.Lock, time.Minute)
	def(&c.PollMin, 200*time.Millisecond)
	def(&c.PollMax, 5*time.Second)
	def(&c.DedupTTL, 10*time.Minute)
	def(&c.DrainTimeout, 30*time.Second)
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.DedupSize == 0 {
		c.DedupSize = 10000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 100 << 20
	}
	if c.WakeClient == nil {
		c.WakeClient = &http.Client{Timeout: 5 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func retries(v, def int) int {
	switch v {
	case 0:
		return def
	case -1:
		return 0
	}
	return v
}

// Client sends to connectors and receives from them. Safe for concurrent use.
type Client struct {
	cfg   Config
	log   *slog.Logger
	seen  *seen.Set
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	calls    calls.Set[*Message]
	closeBus func(context.Context) error // set when the client opened the bus

	// instance names this process in the ids of its calls (bus.CallID), so
	// the gateway sends their replies to its own reply queue.
	instance string
	// waiting counts calls waiting for a reply; callStarted (buffered)
	// wakes the reply queue's reader when one starts.
	waiting     atomic.Int64
	callStarted chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool
	running  bool
	starting bool // Run is opening the reply queue
	// replyQueue is this instance's reply queue while Run reads it; ""
	// when replies come on the cloud queue.
	replyQueue string
	// runChanged is closed and replaced whenever running changes.
	runChanged chan struct{}
	// waking: a wake is being sent; wakeAgain: a send finished meanwhile,
	// so one more wake follows (coalesced).
	waking, wakeAgain bool
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if len(cfg.GatewayKeys) == 0 && len(cfg.WorkerKeys) > 0 {
		cfg.GatewayKeys = cfg.WorkerKeys
		envflag.Warn(cfg.Logger, []envflag.Deprecation{{Old: "botecloud.Config.WorkerKeys", New: "botecloud.Config.GatewayKeys"}})
	}
	c := &Client{cfg: cfg, log: cfg.Logger, now: time.Now, sleep: retry.Sleep, inFlight: map[string]bool{}, runChanged: make(chan struct{}),
		instance: bus.NewInstance(), callStarted: make(chan struct{}, 1)}
	c.seen = seen.New(cfg.DedupSize, cfg.DedupTTL).WithClock(func() time.Time { return c.now() })
	return c, nil
}
