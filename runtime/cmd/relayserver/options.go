package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/profiling"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/tfarchive"
)

const envPrefix = "BOTE_RELAYSERVER"

// options is the server's configuration.
type options struct {
	// Relay.
	connectionString string
	namespace        string
	cloud            string
	hybridConnection string
	relayAuth        string
	keyName          string
	key              string
	relayInsecure    bool
	noRelay          bool
	// Local port.
	localListen  string
	healthListen string
	pprofListen  string
	// Operator authentication.
	apiKeysTable      string
	apiKeysFile       string
	oauthIssuer       string
	oauthAudience     string
	oauthJWKSURL      string
	oauthRequiredRole string
	oauthRoles        string // JSON role map, or
	oauthRolesFile    string // a file holding it
	roleMap           operatorauth.RoleMap
	// Agents.
	agentsFile   string
	registryFile string
	registryURL  string
	// agentVersion is the version the stack deployed (agent image label).
	agentVersion string
	// Runs: state in Tables, artifacts in Blobs, agents through the bus.
	storageConnectionString string
	tableURL, blobURL       string
	queueURL                string
	azureIdentity           bool
	createResources         bool
	tablePrefix             string
	runsContainer           string
	bus                     string
	serviceBusConnection    string
	serviceBusNamespace     string
	serviceName             string
	workerWakeURL           string
	cloudSigningKey         string
	workerKeys              string
	secretsFile             string
	keyVaultURL             string
	dispatchTick            time.Duration
	silentAfter             time.Duration
	uploadLinkTTL           time.Duration
	maxBundleBytes          int64
	// Behaviour.
	eventInterval   time.Duration
	shutdownTimeout time.Duration
	logLevel        slog.Level
	logFormat       string
}

// parseOptions reads flags, with defaults taken from BOTE_RELAYSERVER_*
// variables, and validates them.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("relayserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.connectionString, "connection-string", "", "Relay connection string (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...;EntityPath=...)")
	fs.StringVar(&o.namespace, "namespace", "", "Relay namespace: bare name, host, or connection string")
	fs.StringVar(&o.cloud, "cloud", "public", "Azure cloud for a bare namespace name: public, usgovernment, china")
	fs.StringVar(&o.hybridConnection, "hybrid-connection", "", "hybrid connection to listen on (default: the connection string's EntityPath)")
	fs.StringVar(&o.relayAuth, "relay-auth", "sas", "relay authentication: sas (key name and key, or the connection string's) or entra (DefaultAzureCredential, managed identity)")
	fs.StringVar(&o.keyName, "key-name", "", "SAS rule name with the Listen right")
	fs.StringVar(&o.key, "key", "", "SAS key (prefer the environment variable)")
	fs.BoolVar(&o.relayInsecure, "relay-insecure", false, "allow ws:// to a local test relay (never for Azure)")
	fs.BoolVar(&o.noRelay, "no-relay", false, "serve only on --local-listen, without a relay listener")
	fs.StringVar(&o.localListen, "local-listen", "", "also serve on this loopback address, e.g. 127.0.0.1:8080 (local use)")
	fs.StringVar(&o.healthListen, "health-listen", "", "serve GET /healthz, /readyz and /metrics (Prometheus) on this address, e.g. :8080, for probes and scrapers; the API stays relay-only")
	fs.StringVar(&o.pprofListen, "pprof-listen", "", "serve Go pprof endpoints on this loopback address, e.g. 127.0.0.1:6060 (off by default)")
	fs.StringVar(&o.apiKeysFile, "api-keys-file", "", "operator API keys file (hashed; see `relayserver apikey`); reloaded when it changes")
	fs.StringVar(&o.apiKeysTable, "api-keys-table", "", "operator API keys table in the run storage (hashed; shared by every replica, re-read every 5s), instead of --api-keys-file")
	fs.StringVar(&o.oauthIssuer, "oauth-issuer", "", "issuer of operator OAuth2 access tokens, e.g. https://login.microsoftonline.com/<tenant>/v2.0")
	fs.StringVar(&o.oauthAudience, "oauth-audience", "", "audience operator tokens must carry")
	fs.StringVar(&o.oauthJWKSURL, "oauth-jwks-url", "", "JWKS URL of the issuer (default: from its OpenID discovery document)")
	fs.StringVar(&o.oauthRequiredRole, "oauth-required-role", "", "app role or scope operator tokens must carry")
	fs.StringVar(&o.oauthRoles, "oauth-roles", "", `operator roles from token claims, JSON: {"admin":["role:<app role>"],"tenants":{"<tenant>":{"reader|operator|approver":["role:<app role>","group:<group object id>"]}}} (see docs/ops.md)`)
	fs.StringVar(&o.oauthRolesFile, "oauth-roles-file", "", "file holding the --oauth-roles JSON")
	fs.StringVar(&o.agentVersion, "deployed-agent-version", "", "agent version the stack deployed (its image's version); `opsbot agents` marks agents reporting another")
	fs.StringVar(&o.agentsFile, "agents-file", "", "seed list of agents (JSON, see docs/ops.md)")
	fs.StringVar(&o.registryFile, "registry-file", "", "connector registry file: the agents of each tenant and their public keys (secrets are sealed to them)")
	fs.StringVar(&o.registryFile, "registry", "", "same as --registry-file")
	fs.StringVar(&o.registryURL, "registry-url", "", "connector registry blob URL instead of a file (the stack output registryBlobUrl; read with the Azure identity unless it carries a SAS token)")
	fs.StringVar(&o.storageConnectionString, "storage-connection-string", "", "storage account connection string (Azurite locally): enables runs (state in Tables, bundles, plans and logs in Blobs, agents through the bus)")
	fs.StringVar(&o.tableURL, "table-url", "", "table service URL (with --azure-identity)")
	fs.StringVar(&o.blobURL, "blob-url", "", "blob service URL (with --azure-identity)")
	fs.StringVar(&o.queueURL, "queue-url", "", "queue service URL (with --azure-identity and --bus storagequeue)")
	fs.BoolVar(&o.azureIdentity, "azure-identity", false, "authenticate to storage, Service Bus and Key Vault with Microsoft Entra ID (DefaultAzureCredential)")
	fs.BoolVar(&o.createResources, "create-resources", false, "create missing tables, containers and queues (default: true with --storage-connection-string, for local use)")
	fs.StringVar(&o.tablePrefix, "table-prefix", "", "prefix of the run state tables (default boteruns)")
	fs.StringVar(&o.runsContainer, "runs-container", "", "blob container of bundles, plans and logs (default boteruns)")
	fs.StringVar(&o.bus, "bus", "storagequeue", "bus driver to reach agents: storagequeue or servicebus")
	fs.StringVar(&o.serviceBusConnection, "servicebus-connection-string", "", "Service Bus connection string (with --bus servicebus)")
	fs.StringVar(&o.serviceBusNamespace, "servicebus-namespace", "", "Service Bus fully qualified namespace (with --bus servicebus and --azure-identity)")
	fs.StringVar(&o.serviceName, "service-name", "relayserver", "this service's name on the gateway (stamped as the sender of what it sends to agents)")
	fs.StringVar(&o.workerWakeURL, "worker-url", "", "gateway worker base URL, e.g. https://worker.example: after queueing work for agents the relay server wakes a routing replica there, so the worker's route poll is only a safety net (Storage Queues bus; not needed with Service Bus)")
	fs.StringVar(&o.workerKeys, "worker-keys", "", `key set file ({"worker": [<public JWK>, ...]}): only messages the gateway worker signed (worker --signing-key) are taken from agents`)
	fs.StringVar(&o.cloudSigningKey, "cloud-signing-key", "", "EC P-256 private key file (PEM) signing what this service sends to agents; required when the worker has --cloud-service-keys")
	fs.StringVar(&o.secretsFile, "secrets-file", "", "local deployment secrets file (JSON, mode 0600; see docs/runs.md)")
	fs.StringVar(&o.keyVaultURL, "key-vault-url", "", "Key Vault of deployment secrets (with --azure-identity)")
	fs.DurationVar(&o.dispatchTick, "dispatch-tick", 0, "how often every workspace is tried for a run to start (default 10s; runs start at once on enqueue, approval and heartbeats)")
	fs.DurationVar(&o.silentAfter, "agent-silent-after", 0, "an agent silent this long loses its claims: given back to the queue, or needs_attention for an apply that started (default 60s; keep it above twice the agents' --heartbeat-interval)")
	fs.DurationVar(&o.uploadLinkTTL, "upload-link-ttl", 0, "how long an agent's upload link (saved plan, state) is valid; agents renew links of a run they still execute, so a link stops working at most this long after its run phase ended (default 10m)")
	fs.Int64Var(&o.maxBundleBytes, "max-bundle-bytes", 0, "largest configuration bundle accepted, compressed (default 64 MiB)")
	fs.DurationVar(&o.eventInterval, "event-interval", 5*time.Second, "default interval between status events on /v1/events")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to let requests finish on shutdown")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := envflag.Apply(fs, envPrefix, getenv); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.loadRoleMap(); err != nil {
		return o, err
	}
	// Locally (a connection string, usually Azurite) nothing else creates
	// the run tables and container; in Azure the stack does. A flag set
	// from the environment counts as given.
	if o.storageConnectionString != "" {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "create-resources" })
		if !explicit {
			o.createResources = true
		}
	}
	return o, o.Validate()
}

// Validate reports the first invalid setting, by its flag name.
func (o options) Validate() error {
	if o.localListen != "" {
		if err := checkLoopback(o.localListen); err != nil {
			return fmt.Errorf("--local-listen: %w", err)
		}
	}
	if err := profiling.CheckAddr(o.pprofListen); err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	if o.noRelay {
		if o.localListen == "" {
			return errors.New("--no-relay: needs --local-listen, or there is nothing to serve on")
		}
		if o.connectionString != "" || o.namespace != "" {
			return errors.New("--no-relay: conflicts with --namespace/--connection-string")
		}
	} else if _, _, err := o.relayConfig(); err != nil {
		return err
	}
	if o.apiKeysFile == "" && o.apiKeysTable == "" && o.oauthIssuer == "" {
		return errors.New("--api-keys-file, --api-keys-table or --oauth-issuer: operators need a way to authenticate")
	}
	if o.apiKeysFile != "" && o.apiKeysTable != "" {
		return errors.New("--api-keys-file and --api-keys-table: give one")
	}
	if o.apiKeysTable != "" && !o.runsEnabled() {
		return errors.New("--api-keys-table: needs the run storage (--storage-connection-string, or --table-url with --azure-identity)")
	}
	if o.oauthIssuer != "" {
		if err := o.jwtConfig().Validate(); err != nil {
			return fmt.Errorf("--oauth-*: %w", err)
		}
	} else if o.oauthAudience != "" || o.oauthJWKSURL != "" || o.oauthRequiredRole != "" || o.oauthRoles != "" || o.oauthRolesFile != "" {
		return errors.New("--oauth-issuer: required when other --oauth-* flags are set")
	}
	if o.agentsFile != "" && (o.registryFile != "" || o.registryURL != "") {
		return errors.New("--agents-file and --registry-file/--registry-url: give one")
	}
	if o.registryFile != "" && o.registryURL != "" {
		return errors.New("--registry-file and --registry-url: give one")
	}
	if err := o.validateRuns(); err != nil {
		return err
	}
	if o.eventInterval <= 0 {
		return fmt.Errorf("--event-interval: %s must be positive", o.eventInterval)
	}
	if o.shutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout: %s must be positive", o.shutdownTimeout)
	}
	switch o.logFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format: %q must be text or json", o.logFormat)
	}
	return nil
}

// relayConfig resolves the relay namespace and whether Entra ID is used. The
// credential itself is built at serve time (Entra needs the environment).
func (o options) relayConfig() (relay.Namespace, string, error) {
	raw := o.namespace
	if o.connectionString != "" {
		if raw != "" {
			return relay.Namespace{}, "", errors.New("--connection-string and --namespace: give one")
		}
		raw = o.connectionString
	}
	if raw == "" {
		return relay.Namespace{}, "", errors.New("--namespace or --connection-string: required (or --no-relay with --local-listen for local use)")
	}
	cloud, err := relay.CloudByName(o.cloud)
	if err != nil {
		return relay.Namespace{}, "", fmt.Errorf("--cloud: %w", err)
	}
	ns, err := relay.ParseNamespace(raw, relay.InCloud(cloud))
	if err != nil {
		return relay.Namespace{}, "", fmt.Errorf("--namespace: %w", err)
	}
	hc := o.hybridConnection
	if hc == "" {
		hc = ns.EntityPath
	}
	if hc == "" {
		return relay.Namespace{}, "", errors.New("--hybrid-connection: required (or EntityPath in the connection string)")
	}
	switch o.relayAuth {
	case "sas":
		if (o.keyName == "") != (o.key == "") {
			return relay.Namespace{}, "", errors.New("--key-name and --key: give both or neither")
		}
		if o.keyName == "" && ns.Credential() == nil {
			return relay.Namespace{}, "", errors.New("--key: --relay-auth sas needs --key-name and --key (or a connection string with a key)")
		}
	case "entra":
		if o.key != "" {
			return relay.Namespace{}, "", errors.New("--key: --relay-auth entra does not use a SAS key")
		}
	default:
		return relay.Namespace{}, "", fmt.Errorf("--relay-auth: %q must be sas or entra", o.relayAuth)
	}
	return ns, hc, nil
}

func (o options) jwtConfig() operatorauth.JWTConfig {
	return operatorauth.JWTConfig{
		Issuer:       o.oauthIssuer,
		Audience:     o.oauthAudience,
		JWKSURL:      o.oauthJWKSURL,
		RequiredRole: o.oauthRequiredRole,
		Roles:        o.roleMap,
	}
}

// loadRoleMap parses --oauth-roles or the file --oauth-roles-file names.
func (o *options) loadRoleMap() error {
	data, flag := []byte(o.oauthRoles), "--oauth-roles"
	switch {
	case o.oauthRoles != "" && o.oauthRolesFile != "":
		return errors.New("--oauth-roles and --oauth-roles-file: give one")
	case o.oauthRolesFile != "":
		var err error
		if data, err = os.ReadFile(o.oauthRolesFile); err != nil {
			return fmt.Errorf("--oauth-roles-file: %w", err)
		}
		flag = "--oauth-roles-file"
	case o.oauthRoles == "":
		return nil
	}
	m, err := operatorauth.ParseRoleMap(data)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	o.roleMap = m
	return nil
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
func (o options) runsEnabled() bool {
	return o.storageConnectionString != "" || o.tableURL != "" || o.blobURL != ""
}

// validateRuns checks the runs settings, by flag name.
func (o options) validateRuns() error {
	if !o.runsEnabled() {
		for flag, set := range map[string]bool{"--secrets-file": o.secretsFile != "", "--key-vault-url": o.keyVaultURL != "", "--servicebus-connection-string": o.serviceBusConnection != ""} {
			if set {
				return fmt.Errorf("%s: needs runs enabled (--storage-connection-string, or --table-url and --blob-url with --azure-identity)", flag)
			}
		}
		return nil
	}
	switch {
	case o.storageConnectionString != "" && (o.tableURL != "" || o.blobURL != "" || o.queueURL != ""):
		return errors.New("--storage-connection-string and --table-url/--blob-url/--queue-url: give one")
	case o.storageConnectionString == "" && (o.tableURL == "" || o.blobURL == ""):
		return errors.New("--table-url and --blob-url: both are required without --storage-connection-string")
	case o.storageConnectionString == "" && !o.azureIdentity:
		return errors.New("--azure-identity: service URLs need it (or give --storage-connection-string)")
	case o.registryFile == "" && o.registryURL == "":
		return errors.New("--registry or --registry-url: runs need the connector registry (the agents of each tenant and their keys)")
	case o.agentsFile != "":
		return errors.New("--agents-file: with runs, agents come from the run store and the registry")
	case o.secretsFile != "" && o.keyVaultURL != "":
		return errors.New("--secrets-file and --key-vault-url: give one")
	case o.keyVaultURL != "" && !o.azureIdentity:
		return errors.New("--key-vault-url: needs --azure-identity")
	case o.dispatchTick < 0:
		return fmt.Errorf("--dispatch-tick: %s is negative", o.dispatchTick)
	case o.silentAfter < 0:
		return fmt.Errorf("--agent-silent-after: %s is negative", o.silentAfter)
	case o.uploadLinkTTL < 0 || o.uploadLinkTTL > 24*time.Hour:
		return fmt.Errorf("--upload-link-ttl: %s must be between 0 (default) and 24h", o.uploadLinkTTL)
	case o.maxBundleBytes < 0 || o.maxBundleBytes > tfarchive.BundleLimits.MaxBytes:
		return fmt.Errorf("--max-bundle-bytes: %d must be between 0 (default) and %d", o.maxBundleBytes, tfarchive.BundleLimits.MaxBytes)
	case o.serviceName == "":
		return errors.New("--service-name: required")
	}
	switch o.bus {
	case "storagequeue":
		if o.storageConnectionString == "" && o.queueURL == "" {
			return errors.New("--queue-url: --bus storagequeue needs it without --storage-connection-string")
		}
	case "servicebus":
		if (o.serviceBusConnection == "") == (o.serviceBusNamespace == "") {
			return errors.New("--servicebus-connection-string or --servicebus-namespace: give one with --bus servicebus")
		}
		if o.serviceBusNamespace != "" && !o.azureIdentity {
			return errors.New("--servicebus-namespace: needs --azure-identity")
		}
	default:
		return fmt.Errorf("--bus: %q must be storagequeue or servicebus", o.bus)
	}
	return nil
}
