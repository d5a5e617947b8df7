package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsserver"
)

const envPrefix = "BOTE_OPSSERVER"

// renamed are the names from before two renames, still read (with a
// warning) for one more release: the environment prefix of the binary's
// old name relayserver, and the flags from before the worker became the
// gateway.
var renamed = envflag.Renamed{
	Prefix: "BOTE_RELAYSERVER",
	Flags:  map[string]string{"worker-url": "gateway-url", "worker-keys": "gateway-keys"},
}

// parseOptions reads flags, with defaults taken from BOTE_OPSSERVER_*
// variables (or the deprecated BOTE_RELAYSERVER_*), into a validated
// server configuration whose Logger writes to stderr.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (opsserver.Config, error) {
	// size: one flag per server setting, declared in one place so -h lists them together.
	c := opsserver.Config{Version: version}
	var (
		roles, rolesFile string
		logLevel         slog.Level
		logFormat        string
	)
	fs := flag.NewFlagSet("opsserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.RelayConnectionString, "connection-string", "", "Relay connection string (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...;EntityPath=...)")
	fs.StringVar(&c.Namespace, "namespace", "", "Relay namespace: bare name, host, or connection string")
	fs.StringVar(&c.Cloud, "cloud", "public", "Azure cloud for a bare namespace name: public, usgovernment, china")
	fs.StringVar(&c.HybridConnection, "hybrid-connection", "", "hybrid connection to listen on (default: the connection string's EntityPath)")
	fs.StringVar(&c.RelayAuth, "relay-auth", "sas", "relay authentication: sas (key name and key, or the connection string's) or entra (DefaultAzureCredential, managed identity)")
	fs.StringVar(&c.KeyName, "key-name", "", "SAS rule name with the Listen right")
	fs.StringVar(&c.Key, "key", "", "SAS key (prefer the environment variable)")
	fs.BoolVar(&c.RelayInsecure, "relay-insecure", false, "allow ws:// to a local test relay (never for Azure)")
	fs.BoolVar(&c.NoRelay, "no-relay", false, "serve only on --local-listen, without a relay listener")
	fs.StringVar(&c.LocalListen, "local-listen", "", "also serve on this loopback address, e.g. 127.0.0.1:8080 (local use)")
	fs.StringVar(&c.HealthListen, "health-listen", "", "serve GET /healthz, /readyz and /metrics (Prometheus) on this address, e.g. :8080, for probes and scrapers; the API stays relay-only")
	fs.StringVar(&c.PprofListen, "pprof-listen", "", "serve Go pprof endpoints on this loopback address, e.g. 127.0.0.1:6060 (off by default)")
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "operator API keys file (hashed; see `opsserver apikey`); reloaded when it changes")
	fs.StringVar(&c.APIKeysTable, "api-keys-table", "", "operator API keys table in the run storage (hashed; shared by every replica, re-read every --api-keys-recheck), instead of --api-keys-file")
	fs.DurationVar(&c.APIKeysRecheck, "api-keys-recheck", 0, "how often the API keys file or table is re-read: a key created, rotated or revoked elsewhere is in force here within this (default 5s)")
	fs.StringVar(&c.OAuthIssuer, "oauth-issuer", "", "issuer of operator OAuth2 access tokens, e.g. https://login.microsoftonline.com/<tenant>/v2.0")
	fs.StringVar(&c.OAuthAudience, "oauth-audience", "", "audience operator tokens must carry")
	fs.StringVar(&c.OAuthJWKSURL, "oauth-jwks-url", "", "JWKS URL of the issuer (default: from its OpenID discovery document)")
	fs.StringVar(&c.OAuthRequiredRole, "oauth-required-role", "", "app role or scope operator tokens must carry")
	fs.StringVar(&roles, "oauth-roles", "", `operator roles from token claims, JSON: {"admin":["role:<app role>"],"tenants":{"<tenant>":{"reader|operator|approver":["role:<app role>","group:<group object id>"]}}} (see docs/ops.md)`)
	fs.StringVar(&rolesFile, "oauth-roles-file", "", "file holding the --oauth-roles JSON")
	fs.StringVar(&c.DeployedAgentVersion, "deployed-agent-version", "", "agent version the stack deployed (its image's version); `opsbot agents` marks agents reporting another")
	fs.StringVar(&c.AgentsFile, "agents-file", "", "seed list of agents (JSON, see docs/ops.md)")
	fs.StringVar(&c.RegistryFile, "registry-file", "", "connector registry file: the agents of each tenant and their public keys (secrets are sealed to them)")
	fs.StringVar(&c.RegistryFile, "registry", "", "same as --registry-file")
	fs.StringVar(&c.RegistryURL, "registry-url", "", "connector registry blob URL instead of a file (the stack output registryBlobUrl; read with the Azure identity unless it carries a SAS token)")
	fs.DurationVar(&c.RegistryPoll, "registry-poll", 0, "how often the registry file or blob is looked at for changes (default 2s)")
	fs.StringVar(&c.StorageConnectionString, "storage-connection-string", "", "storage account connection string (Azurite locally): enables runs (state in Tables, bundles, plans and logs in Blobs, agents through the bus)")
	fs.StringVar(&c.TableURL, "table-url", "", "table service URL (with --azure-identity)")
	fs.StringVar(&c.BlobURL, "blob-url", "", "blob service URL (with --azure-identity)")
	fs.StringVar(&c.QueueURL, "queue-url", "", "queue service URL (with --azure-identity and --bus storagequeue)")
	fs.BoolVar(&c.AzureIdentity, "azure-identity", false, "authenticate to storage, Service Bus and Key Vault with Microsoft Entra ID (DefaultAzureCredential)")
	fs.BoolVar(&c.CreateResources, "create-resources", false, "create missing tables, containers and queues (default: true with --storage-connection-string, for local use)")
	fs.StringVar(&c.TablePrefix, "table-prefix", "", "prefix of the run state tables (default boteruns)")
	fs.StringVar(&c.RunsContainer, "runs-container", "", "blob container of bundles, plans and logs (default boteruns)")
	fs.StringVar(&c.Bus, "bus", "storagequeue", "bus driver to reach agents: storagequeue or servicebus")
	fs.StringVar(&c.ServiceBusConnectionString, "servicebus-connection-string", "", "Service Bus connection string (with --bus servicebus)")
	fs.StringVar(&c.ServiceBusNamespace, "servicebus-namespace", "", "Service Bus fully qualified namespace (with --bus servicebus and --azure-identity)")
	// The binary's old name, for good: agents accept run messages from it
	// (agent.DefaultServer) and gateways name its keys by it.
	fs.StringVar(&c.ServiceName, "service-name", "relayserver", "this service's name on the gateway (stamped as the sender of what it sends to agents)")
	fs.StringVar(&c.GatewayURL, "gateway-url", "", "gateway base URL, e.g. https://gateway.example: after queueing work for agents the ops server wakes a routing replica there, so the gateway's route poll is only a safety net (Storage Queues bus; not needed with Service Bus)")
	fs.StringVar(&c.GatewayKeys, "gateway-keys", "", `key set file ({"gateway": [<public JWK>, ...]}): only messages the gateway signed (gateway --signing-key) are taken from agents`)
	fs.StringVar(&c.CloudSigningKey, "cloud-signing-key", "", "EC P-256 private key file (PEM) signing what this service sends to agents; required when the gateway has --cloud-service-keys")
	fs.StringVar(&c.SecretsFile, "secrets-file", "", "local deployment secrets file (JSON, mode 0600; see docs/runs.md)")
	fs.StringVar(&c.KeyVaultURL, "key-vault-url", "", "Key Vault of deployment secrets (with --azure-identity)")
	fs.DurationVar(&c.DispatchTick, "dispatch-tick", 0, "how often every workspace is tried for a run to start (default 10s; runs start at once on enqueue, approval, a run's end and a heartbeat that offers an agent's room anew)")
	fs.DurationVar(&c.AgentSilentAfter, "agent-silent-after", 0, "an agent silent this long loses its claims: given back to the queue, or needs_attention for an apply that started (default 60s; keep it above twice the agents' --heartbeat-interval)")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", 0, "how often agents past --agent-silent-after and runs past their deadline are looked for: an agent is found lost at most --agent-silent-after plus this after its last heartbeat (default 10s)")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", false, "let webhooks reach loopback, private and link-local addresses and use http (local use and tests; never in Azure)")
	fs.DurationVar(&c.WebhookPoll, "webhook-poll", 0, "how often the webhook outbox is read for deliveries made on other replicas and retries (default 5s)")
	fs.DurationVar(&c.WebhookRetryBase, "webhook-retry-base", 0, "the first delay before a failed webhook is tried again; it doubles (with jitter) up to --webhook-retry-max, 10 attempts in all (default 10s)")
	fs.DurationVar(&c.WebhookRetryMax, "webhook-retry-max", 0, "the longest delay between two attempts of a failed webhook (default 10m)")
	fs.DurationVar(&c.DriftTick, "drift-tick", 0, "how often due drift-check schedules are looked for: one table query per tick per replica (default 30s)")
	fs.DurationVar(&c.UploadLinkTTL, "upload-link-ttl", 0, "how long an agent's upload link (saved plan, state) is valid; agents renew links of a run they still execute, so a link stops working at most this long after its run phase ended (default 10m)")
	fs.Int64Var(&c.MaxBundleBytes, "max-bundle-bytes", 0, "largest configuration bundle accepted, compressed (default 64 MiB)")
	fs.DurationVar(&c.EventInterval, "event-interval", 5*time.Second, "default interval between status events on /v1/events")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to let requests finish on shutdown")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")

	deprecated, err := renamed.Parse(fs, args, envPrefix, getenv)
	if err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.OAuthRoles, err = loadRoleMap(roles, rolesFile); err != nil {
		return c, err
	}
	// Locally (a connection string, usually Azurite) nothing else creates
	// the run tables and container; in Azure the stack does. A flag set
	// from the environment counts as given.
	if c.StorageConnectionString != "" {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "create-resources" })
		if !explicit {
			c.CreateResources = true
		}
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	hopts := &slog.HandlerOptions{Level: logLevel}
	switch logFormat {
	case "text":
		c.Logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		c.Logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return c, fmt.Errorf("--log-format: %q must be text or json", logFormat)
	}
	envflag.Warn(c.Logger, deprecated)
	return c, nil
}

// loadRoleMap parses --oauth-roles or the file --oauth-roles-file names;
// nil when neither is given.
func loadRoleMap(roles, rolesFile string) (*operatorauth.RoleMap, error) {
	data, flag := []byte(roles), "--oauth-roles"
	switch {
	case roles != "" && rolesFile != "":
		return nil, errors.New("--oauth-roles and --oauth-roles-file: give one")
	case rolesFile != "":
		var err error
		if data, err = os.ReadFile(rolesFile); err != nil {
			return nil, fmt.Errorf("--oauth-roles-file: %w", err)
		}
		flag = "--oauth-roles-file"
	case roles == "":
		return nil, nil
	}
	m, err := operatorauth.ParseRoleMap(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return &m, nil
}
