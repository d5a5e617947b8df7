// Package gatewayserver assembles the gateway: the connector session
// server, the cloud→connector router, the nudge fan-out between replicas,
// and the HTTP endpoints around them (/v1/connect, /healthz, /readyz,
// /metrics). cmd/gateway turns flags into a Config and calls Run.
//
// Shutdown, when Run's context ends: readiness turns false, the listener
// stops taking connections, sessions get a going-away close (1001) once
// their requests in flight are answered, the router stops receiving and
// finishes the messages it holds, nudges still queued are delivered, and the
// bus driver is closed.
package gatewayserver

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/busdriver"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/gatewayserver/routing"
	"github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/profiling"
	"github.com/botehq/platform/runtime/registry"
)

// Bus drivers (Config.Bus), as package busdriver names them.
const (
	BusStorageQueue = busdriver.StorageQueue
	BusServiceBus   = busdriver.ServiceBus
)

// QueueConnectorErrors receives messages connectors could not handle
// (dead_letter frames), as envelopes from the reporting connector.
const QueueConnectorErrors = "bote-connector-errors"

// Config configures the gateway.
type Config struct {
	// Listen is the HTTP address (":8080"; ":0" picks a free port).
	Listen string

	// StorageConnectionString of the storage account holding connector
	// queues, subscriptions, presence and claim blobs. Alternatively
	// QueueURL, TableURL and BlobURL with Credential (Entra ID); queue SAS
	// URLs then need StorageAccountKey.
	StorageConnectionString string
	QueueURL, TableURL      string
	BlobURL                 string
	Credential              azcore.TokenCredential
	StorageAccountName      string
	StorageAccountKey       string

	// Issuer, JWKSURL and Audience validate connector access tokens.
	Issuer, JWKSURL, Audience string

	// Bus is the bus driver: BusStorageQueue (default; on the storage
	// account) or BusServiceBus (with ServiceBusConnectionString, or
	// ServiceBusNamespace and Credential).
	Bus                        string
	ServiceBusConnectionString string
	ServiceBusNamespace        string
	// OpenBus, if set, opens the bus driver instead (tests, other drivers).
	OpenBus func(ctx context.Context) (bus.Driver, error)

	// CloudServices, if set, are the only cloud service names accepted as
	// the sender of a message on "bote-connectors"; others go to the error
	// queue (see package routing). Empty accepts every well-formed name.
	CloudServices []string
	// SigningKeyPath, if set, is an EC P-256 private key (PEM) the gateway
	// signs every envelope it stamps a connector's identity on with
	// (envelope.Envelope.Sign), so that cloud services holding its public
	// key (botecloud.Config.GatewayKeys) can tell them from anything else on
	// "bote-cloud". Read at start.
	SigningKeyPath string
	// CloudServiceKeysPath, if set, is the cloud service keys file
	// (registry.ParseKeySet): only the services it names may send, and only
	// with envelopes signed by one of their keys. Read at start.
	CloudServiceKeysPath string

	// Replica identifies this replica for nudges (default: random).
	Replica string
	// RegistryPath, if set, is the connector registration file: targeted
	// messages to connectors not in it go to the error queue. Reloaded when
	// it changes, which is checked at most every RegistryPoll (default
	// DefaultRegistryPoll).
	RegistryPath string
	RegistryPoll time.Duration

	PingInterval time.Duration // default 30s
	// MaxSessionsPerConnector bounds one connector's sessions on this
	// replica (default session.DefaultMaxSessionsPerConnector); a new one
	// beyond it closes the connector's oldest.
	MaxSessionsPerConnector int
	SASLifetime             time.Duration // default 15m
	ShutdownTimeout         time.Duration // default 30s
	// RoutePollMin and RoutePollMax bound the router's wait between empty
	// receives on a polling bus (Storage Queues): it doubles from min to max
	// while idle (defaults 20ms and routing.DefaultIdleMax, 5s). Work is
	// picked up at once when its sender wakes the router (POST
	// sessionproto.WakePath, botecloud.Config.WakeURL); the poll only
	// covers a lost wake. Service Bus receives block instead and are
	// unaffected.
	RoutePollMin, RoutePollMax time.Duration
	// RouteLock is the bus lock of a message the router received
	// (default routing.DefaultLock, 30s; at least 2s): how long a message
	// stays invisible when the receive that took it was lost, e.g. the
	// storage service restarting under it. Storage Queues only; on
	// Service Bus the queue's LockDuration applies.
	RouteLock time.Duration
	// FanOut bounds the connector-queue enqueues the router has in flight
	// (default routing.DefaultFanOut, sized to the storage account's
	// request target; see there).
	FanOut int
	// SessionsOnly runs no router on this replica: it serves sessions and
	// receives nudges from replicas that route (scaling the two apart).
	SessionsOnly bool
	// CreateResources creates queues, tables and the claim container when
	// missing (local; in Azure the stack creates them).
	CreateResources bool

	// PprofListen, if set, serves Go's pprof endpoints on this loopback
	// address ("127.0.0.1:6060"); off by default (package profiling).
	PprofListen string

	Logger *slog.Logger
	// Stdout gets the "listening on" line scripts wait for (default
	// os.Stdout; the gateway command passes its run's stdout).
	Stdout io.Writer
	// OnListen, if set, is called with the bound address once serving.
	OnListen func(addr net.Addr)
}

var replicaPattern = regexp.MustCompile(`^[a-z0-9]{1,40}$`)

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("gatewayserver config: Listen is required")
	case c.StorageConnectionString == "" && (c.QueueURL == "" || c.TableURL == "" || c.BlobURL == "" || c.Credential == nil):
		return errors.New("gatewayserver config: StorageConnectionString, or QueueURL, TableURL, BlobURL and Credential, are required")
	case c.StorageConnectionString != "" && (c.QueueURL != "" || c.TableURL != "" || c.BlobURL != ""):
		return errors.New("gatewayserver config: StorageConnectionString and QueueURL/TableURL/BlobURL are exclusive")
	case (c.StorageAccountKey == "") != (c.StorageAccountName == ""):
		return errors.New("gatewayserver config: StorageAccountName and StorageAccountKey go together")
	case c.Issuer == "":
		return errors.New("gatewayserver config: Issuer is required")
	case c.JWKSURL == "":
		return errors.New("gatewayserver config: JWKSURL is required")
	case c.Bus != "" && c.Bus != BusStorageQueue && c.Bus != BusServiceBus:
		return fmt.Errorf("gatewayserver config: Bus %q must be %q or %q", c.Bus, BusStorageQueue, BusServiceBus)
	case c.Bus == BusServiceBus && c.OpenBus == nil && c.ServiceBusConnectionString == "" && (c.ServiceBusNamespace == "" || c.Credential == nil):
		return errors.New("gatewayserver config: ServiceBusConnectionString, or ServiceBusNamespace with Credential, is required with Bus servicebus")
	case c.Replica != "" && !replicaPattern.MatchString(c.Replica):
		return fmt.Errorf("gatewayserver config: Replica %q must be 1 to 40 lowercase letters and digits", c.Replica)
	case c.PingInterval < 0, c.SASLifetime < 0, c.ShutdownTimeout < 0, c.RoutePollMin < 0, c.RoutePollMax < 0, c.RegistryPoll < 0:
		return errors.New("gatewayserver config: PingInterval, SASLifetime, ShutdownTimeout, RoutePollMin, RoutePollMax and RegistryPoll must not be negative")
	case c.MaxSessionsPerConnector < 0:
		return fmt.Errorf("gatewayserver config: MaxSessionsPerConnector %d must not be negative", c.MaxSessionsPerConnector)
	case c.FanOut < 0 || c.FanOut > routing.MaxFanOut:
		return fmt.Errorf("gatewayserver config: FanOut %d must be between 0 (default %d) and %d", c.FanOut, routing.DefaultFanOut, routing.MaxFanOut)
	case c.RouteLock < 0 || (c.RouteLock > 0 && c.RouteLock < 2*time.Second):
		return fmt.Errorf("gatewayserver config: RouteLock %s must be 0 (default %s) or at least 2s (it is renewed every half lock)", c.RouteLock, routing.DefaultLock)
	}
	if err := profiling.CheckAddr(c.PprofListen); err != nil {
		return fmt.Errorf("gatewayserver config: PprofListen: %w", err)
	}
	return nil
}

// loadKeys reads the gateway's signing key and the cloud services' public
// keys, each only when its path is set.
func loadKeys(cfg *Config) (*ecdsa.PrivateKey, map[string][]*ecdsa.PublicKey, error) {
	var signingKey *ecdsa.PrivateKey
	if cfg.SigningKeyPath != "" {
		var err error
		if signingKey, err = clientauth.LoadKeyFile(cfg.SigningKeyPath); err != nil {
			return nil, nil, fmt.Errorf("gateway signing key: %w", err)
		}
	}
	var serviceKeys map[string][]*ecdsa.PublicKey
	if cfg.CloudServiceKeysPath != "" {
		var err error
		if serviceKeys, err = registry.LoadKeySet(cfg.CloudServiceKeysPath); err != nil {
			return nil, nil, err
		}
	}
	return signingKey, serviceKeys, nil
}

// sessionVerifier checks a session's access token and names its connector.
func sessionVerifier(v *accesstoken.Verifier) session.VerifierFunc {
	return func(ctx context.Context, raw string) (session.Principal, error) {
		c, err := v.Verify(ctx, raw)
		if err != nil {
			return session.Principal{}, err
		}
		// The verifier checked both ids.
		p := session.Principal{Identity: session.Identity{Tenant: ids.TenantID(c.Tenant), Connector: c.Connector}}
		if c.ExpiresAt != nil {
			p.Expires = c.ExpiresAt.Time
		}
		return p, nil
	}
}
