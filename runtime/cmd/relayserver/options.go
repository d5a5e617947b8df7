package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/relay"
)

const envPrefix = "BOTE_RELAYSERVER_"

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
	localListen string
	// Operator authentication.
	apiKeysFile       string
	oauthIssuer       string
	oauthAudience     string
	oauthJWKSURL      string
	oauthRequiredRole string
	// Agents.
	agentsFile   string
	registryFile string
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
	fs.StringVar(&o.apiKeysFile, "api-keys-file", "", "operator API keys file (hashed; see `relayserver apikey`); reloaded when it changes")
	fs.StringVar(&o.oauthIssuer, "oauth-issuer", "", "issuer of operator OAuth2 access tokens, e.g. https://login.microsoftonline.com/<tenant>/v2.0")
	fs.StringVar(&o.oauthAudience, "oauth-audience", "", "audience operator tokens must carry")
	fs.StringVar(&o.oauthJWKSURL, "oauth-jwks-url", "", "JWKS URL of the issuer (default: from its OpenID discovery document)")
	fs.StringVar(&o.oauthRequiredRole, "oauth-required-role", "", "app role or scope operator tokens must carry")
	fs.StringVar(&o.agentsFile, "agents-file", "", "seed list of agents (JSON, see docs/ops.md)")
	fs.StringVar(&o.registryFile, "registry-file", "", "connector registry file; every connector is listed as an agent")
	fs.DurationVar(&o.eventInterval, "event-interval", 5*time.Second, "default interval between status events on /v1/events")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to let requests finish on shutdown")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level (debug, info, warn, error)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("invalid %s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
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
	if o.apiKeysFile == "" && o.oauthIssuer == "" {
		return errors.New("--api-keys-file or --oauth-issuer: operators need a way to authenticate")
	}
	if o.oauthIssuer != "" {
		if err := o.jwtConfig().Validate(); err != nil {
			return fmt.Errorf("--oauth-*: %w", err)
		}
	} else if o.oauthAudience != "" || o.oauthJWKSURL != "" || o.oauthRequiredRole != "" {
		return errors.New("--oauth-issuer: required when other --oauth-* flags are set")
	}
	if o.agentsFile != "" && o.registryFile != "" {
		return errors.New("--agents-file and --registry-file: give one")
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
	}
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
