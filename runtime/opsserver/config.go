// Package opsserver is the ops server: it serves the versioned ops REST API
// (package opsapi) to operators' opsbot CLIs through an Azure Relay Hybrid
// Connections listener (package relay), and optionally on a loopback port;
// it authenticates operators by API key or OAuth2 token and manages the keys
// (package operatorauth); with run storage configured it orchestrates
// Terraform runs (packages runs, runstore, artifacts), dispatches them to
// agents through the gateway (packages dispatch, botecloud) and records an
// audit log (package audit). Run wires all of it from a Config, as
// gatewayserver.Run does for the gateway; the opsserver command only turns
// flags and environment into a Config.
package opsserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/profiling"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/tfarchive"
)

// DefaultAPIKeysRecheck is how often the API keys file or table is
// re-read by default (--api-keys-recheck).
const DefaultAPIKeysRecheck = 5 * time.Second

// Config is the ops server's configuration. Each field is set by the
// opsserver flag named in its comment; Validate names bad fields by
// those flags, as operators know them.
type Config struct {
	// Relay.
	RelayConnectionString string // --connection-string
	Namespace             string // --namespace
	Cloud                 string // --cloud
	HybridConnection      string // --hybrid-connection
	RelayAuth             string // --relay-auth: sas or entra
	KeyName               string // --key-name
	Key                   string // --key
	RelayInsecure         bool   // --relay-insecure
	NoRelay               bool   // --no-relay
	// Local ports.
	LocalListen  string // --local-listen
	HealthListen string // --health-listen
	PprofListen  string // --pprof-listen
	// Operator authentication.
	APIKeysTable      string        // --api-keys-table
	APIKeysFile       string        // --api-keys-file
	APIKeysRecheck    time.Duration // --api-keys-recheck (0: DefaultAPIKeysRecheck)
	OAuthIssuer       string        // --oauth-issuer
	OAuthAudience     string        // --oauth-audience
	OAuthJWKSURL      string        // --oauth-jwks-url
	OAuthRequiredRole string        // --oauth-required-role
	// OAuthRoles is the parsed --oauth-roles (or --oauth-roles-file); nil
	// when neither is given.
	OAuthRoles *operatorauth.RoleMap
	// Agents.
	AgentsFile   string // --agents-file
	RegistryFile string // --registry-file, --registry
	RegistryURL  string // --registry-url
	// RegistryPoll is how often the registry is looked at for changes
	// (--registry-poll; 0: registry.DefaultPoll).
	RegistryPoll time.Duration
	// DeployedAgentVersion is the version the stack deployed (agent image
	// label): --deployed-agent-version.
	DeployedAgentVersion string
	// Runs: state in Tables, artifacts in Blobs, agents through the bus.
	StorageConnectionString    string        // --storage-connection-string
	TableURL, BlobURL          string        // --table-url, --blob-url
	QueueURL                   string        // --queue-url
	AzureIdentity              bool          // --azure-identity
	CreateResources            bool          // --create-resources
	TablePrefix                string        // --table-prefix
	RunsContainer              string        // --runs-container
	Bus                        string        // --bus: storagequeue or servicebus
	ServiceBusConnectionString string        // --servicebus-connection-string
	ServiceBusNamespace        string        // --servicebus-namespace
	ServiceName                string        // --service-name
	GatewayURL                 string        // --gateway-url
	CloudSigningKey            string        // --cloud-signing-key
	GatewayKeys                string        // --gateway-keys
	SecretsFile                string        // --secrets-file
	KeyVaultURL                string        // --key-vault-url
	DispatchTick               time.Duration // --dispatch-tick
	AgentSilentAfter           time.Duration // --agent-silent-after
	SweepInterval              time.Duration // --sweep-interval
	UploadLinkTTL              time.Duration // --upload-link-ttl
	MaxBundleBytes             int64         // --max-bundle-bytes
	// Notifications (docs/notifications.md).
	WebhookAllowPrivate bool          // --webhook-allow-private
	WebhookPoll         time.Duration // --webhook-poll
	WebhookRetryBase    time.Duration // --webhook-retry-base
	WebhookRetryMax     time.Duration // --webhook-retry-max
	DriftTick           time.Duration // --drift-tick
	// Behaviour.
	EventInterval   time.Duration // --event-interval
	ShutdownTimeout time.Duration // --shutdown-timeout

	// Version is the server's version, reported by the API and logged.
	Version string
	// Logger receives the server's logs (default: discarded).
	Logger *slog.Logger
	// Stdout receives one line per listener once it serves, e.g.
	// "opsserver listening on http://127.0.0.1:8080" (default: discarded).
	Stdout io.Writer
}

// Validate reports the first invalid setting, by its flag name.
func (c Config) Validate() error {
	if c.LocalListen != "" {
		if err := checkLoopback(c.LocalListen); err != nil {
			return fmt.Errorf("--local-listen: %w", err)
		}
	}
	if err := profiling.CheckAddr(c.PprofListen); err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	if c.NoRelay {
		if c.LocalListen == "" {
			return errors.New("--no-relay: needs --local-listen, or there is nothing to serve on")
		}
		if c.RelayConnectionString != "" || c.Namespace != "" {
			return errors.New("--no-relay: conflicts with --namespace/--connection-string")
		}
	} else if _, _, err := c.Relay(); err != nil {
		return err
	}
	if c.APIKeysFile == "" && c.APIKeysTable == "" && c.OAuthIssuer == "" {
		return errors.New("--api-keys-file, --api-keys-table or --oauth-issuer: operators need a way to authenticate")
	}
	if c.APIKeysFile != "" && c.APIKeysTable != "" {
		return errors.New("--api-keys-file and --api-keys-table: give one")
	}
	if c.APIKeysRecheck < 0 {
		return fmt.Errorf("--api-keys-recheck: %s is negative", c.APIKeysRecheck)
	}
	if c.APIKeysTable != "" && !c.runsEnabled() {
		return errors.New("--api-keys-table: needs the run storage (--storage-connection-string, or --table-url with --azure-identity)")
	}
	if c.OAuthIssuer != "" {
		if err := c.jwtConfig().Validate(); err != nil {
			return fmt.Errorf("--oauth-*: %w", err)
		}
	} else if c.OAuthAudience != "" || c.OAuthJWKSURL != "" || c.OAuthRequiredRole != "" || c.OAuthRoles != nil {
		return errors.New("--oauth-issuer: required when other --oauth-* flags are set")
	}
	if c.AgentsFile != "" && (c.RegistryFile != "" || c.RegistryURL != "") {
		return errors.New("--agents-file and --registry-file/--registry-url: give one")
	}
	if c.RegistryFile != "" && c.RegistryURL != "" {
		return errors.New("--registry-file and --registry-url: give one")
	}
	if c.RegistryPoll < 0 {
		return fmt.Errorf("--registry-poll: %s is negative", c.RegistryPoll)
	}
	if err := c.validateRuns(); err != nil {
		return err
	}
	if c.EventInterval <= 0 {
		return fmt.Errorf("--event-interval: %s must be positive", c.EventInterval)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout: %s must be positive", c.ShutdownTimeout)
	}
	return nil
}

// Relay resolves the relay namespace and whether Entra ID is used. The
// credential itself is built at serve time (Entra needs the environment).
func (c Config) Relay() (relay.Namespace, string, error) {
	raw := c.Namespace
	if c.RelayConnectionString != "" {
		if raw != "" {
			return relay.Namespace{}, "", errors.New("--connection-string and --namespace: give one")
		}
		raw = c.RelayConnectionString
	}
	if raw == "" {
		return relay.Namespace{}, "", errors.New("--namespace or --connection-string: required (or --no-relay with --local-listen for local use)")
	}
	cloud, err := relay.CloudByName(c.Cloud)
	if err != nil {
		return relay.Namespace{}, "", fmt.Errorf("--cloud: %w", err)
	}
	ns, err := relay.ParseNamespace(raw, relay.InCloud(cloud))
	if err != nil {
		return relay.Namespace{}, "", fmt.Errorf("--namespace: %w", err)
	}
	hc := c.HybridConnection
	if hc == "" {
		hc = ns.EntityPath
	}
	if hc == "" {
		return relay.Namespace{}, "", errors.New("--hybrid-connection: required (or EntityPath in the connection string)")
	}
	switch c.RelayAuth {
	case "sas":
		if (c.KeyName == "") != (c.Key == "") {
			return relay.Namespace{}, "", errors.New("--key-name and --key: give both or neither")
		}
		if c.KeyName == "" && ns.Credential() == nil {
			return relay.Namespace{}, "", errors.New("--key: --relay-auth sas needs --key-name and --key (or a connection string with a key)")
		}
	case "entra":
		if c.Key != "" {
			return relay.Namespace{}, "", errors.New("--key: --relay-auth entra does not use a SAS key")
		}
	default:
		return relay.Namespace{}, "", fmt.Errorf("--relay-auth: %q must be sas or entra", c.RelayAuth)
	}
	return ns, hc, nil
}

func (c Config) jwtConfig() operatorauth.JWTConfig {
	jc := operatorauth.JWTConfig{
		Issuer:       c.OAuthIssuer,
		Audience:     c.OAuthAudience,
		JWKSURL:      c.OAuthJWKSURL,
		RequiredRole: c.OAuthRequiredRole,
	}
	if c.OAuthRoles != nil {
		jc.Roles = *c.OAuthRoles
	}
	return jc
}

// checkLoopback refuses a local listen address that is reachable from the
// network: the local port is for the machine's own operator.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (use 127.0.0.1 or [::1])", addr)
}

// runsEnabled reports whether storage is configured, which turns runs on.
func (c Config) runsEnabled() bool {
	return c.StorageConnectionString != "" || c.TableURL != "" || c.BlobURL != ""
}

// validateRuns checks the runs settings, by flag name.
func (c Config) validateRuns() error {
	if !c.runsEnabled() {
		for flag, set := range map[string]bool{"--secrets-file": c.SecretsFile != "", "--key-vault-url": c.KeyVaultURL != "", "--servicebus-connection-string": c.ServiceBusConnectionString != ""} {
			if set {
				return fmt.Errorf("%s: needs runs enabled (--storage-connection-string, or --table-url and --blob-url with --azure-identity)", flag)
			}
		}
		return nil
	}
	switch {
	case c.StorageConnectionString != "" && (c.TableURL != "" || c.BlobURL != "" || c.QueueURL != ""):
		return errors.New("--storage-connection-string and --table-url/--blob-url/--queue-url: give one")
	case c.StorageConnectionString == "" && (c.TableURL == "" || c.BlobURL == ""):
		return errors.New("--table-url and --blob-url: both are required without --storage-connection-string")
	case c.StorageConnectionString == "" && !c.AzureIdentity:
		return errors.New("--azure-identity: service URLs need it (or give --storage-connection-string)")
	case c.RegistryFile == "" && c.RegistryURL == "":
		return errors.New("--registry or --registry-url: runs need the connector registry (the agents of each tenant and their keys)")
	case c.AgentsFile != "":
		return errors.New("--agents-file: with runs, agents come from the run store and the registry")
	case c.SecretsFile != "" && c.KeyVaultURL != "":
		return errors.New("--secrets-file and --key-vault-url: give one")
	case c.KeyVaultURL != "" && !c.AzureIdentity:
		return errors.New("--key-vault-url: needs --azure-identity")
	case c.DispatchTick < 0:
		return fmt.Errorf("--dispatch-tick: %s is negative", c.DispatchTick)
	case c.AgentSilentAfter < 0:
		return fmt.Errorf("--agent-silent-after: %s is negative", c.AgentSilentAfter)
	case c.SweepInterval < 0:
		return fmt.Errorf("--sweep-interval: %s is negative", c.SweepInterval)
	case c.UploadLinkTTL < 0 || c.UploadLinkTTL > 24*time.Hour:
		return fmt.Errorf("--upload-link-ttl: %s must be between 0 (default) and 24h", c.UploadLinkTTL)
	case c.MaxBundleBytes < 0 || c.MaxBundleBytes > tfarchive.BundleLimits.MaxBytes:
		return fmt.Errorf("--max-bundle-bytes: %d must be between 0 (default) and %d", c.MaxBundleBytes, tfarchive.BundleLimits.MaxBytes)
	case c.ServiceName == "":
		return errors.New("--service-name: required")
	}
	switch c.Bus {
	case "storagequeue":
		if c.StorageConnectionString == "" && c.QueueURL == "" {
			return errors.New("--queue-url: --bus storagequeue needs it without --storage-connection-string")
		}
	case "servicebus":
		if (c.ServiceBusConnectionString == "") == (c.ServiceBusNamespace == "") {
			return errors.New("--servicebus-connection-string or --servicebus-namespace: give one with --bus servicebus")
		}
		if c.ServiceBusNamespace != "" && !c.AzureIdentity {
			return errors.New("--servicebus-namespace: needs --azure-identity")
		}
	default:
		return fmt.Errorf("--bus: %q must be storagequeue or servicebus", c.Bus)
	}
	return nil
}
