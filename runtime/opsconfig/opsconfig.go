// Package opsconfig resolves the opsbot CLI's configuration from, highest
// precedence first: command-line flags, OPSBOT_* environment variables, a
// config file, and defaults. Every setting has one name used in all three
// places (flag --hybrid-connection, env OPSBOT_HYBRID_CONNECTION, file key
// hybrid_connection), and the resolved config remembers where each value came
// from, so `opsbot config show` can say why a value is what it is.
//
// The config file is YAML or JSON (by extension): --config or OPSBOT_CONFIG,
// else the first of config.yaml, config.yml, config.json in
// $XDG_CONFIG_HOME/opsbot (default ~/.config/opsbot). Unknown keys are
// errors, so a typo never silently falls back to a default.
//
// The file may hold named profiles, one per environment, each a map of
// settings over the file's top-level ones:
//
//	api_key: obk_...          # every profile's unless it sets its own
//	profile: dev              # the profile used when none is named
//	profiles:
//	  dev: {namespace: ops-dev, hybrid_connection: ops, tenant: contoso}
//	  gov: {namespace: ops-gov, cloud: usgovernment, hybrid_connection: ops, tenant: contoso-gov, api_key: obk_...}
//
// --profile or OPSBOT_PROFILE (else the file's profile key) selects one;
// the environment and flags still win over it. A named profile the file
// does not define is an error.
package opsconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/botehq/platform/runtime/relay"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// Relay authentication modes.
const (
	RelayAuthSAS   = "sas"
	RelayAuthEntra = "entra"
)

// Config is the resolved CLI configuration.
type Config struct {
	// Namespace is the Relay namespace: a bare name, a host, or a connection
	// string (which may carry the key and the hybrid connection).
	Namespace string
	// Cloud resolves a bare namespace name: public, usgovernment or china.
	Cloud string
	// HybridConnection is the hybrid connection the ops server listens on.
	HybridConnection string
	// RelayAuth is sas (KeyName and Key, or the connection string's key) or
	// entra (azidentity's DefaultAzureCredential: az login, managed or
	// workload identity, environment).
	RelayAuth string
	// KeyName and Key are a SAS rule with the Send right.
	KeyName string
	Key     string
	// RelayInsecure allows ws:// to a local test relay. Never for Azure.
	RelayInsecure bool
	// APIKey is the operator credential for the ops API: an API key, or an
	// OAuth2 access token from the configured issuer.
	APIKey string
	// APIScope, instead of APIKey, gets an OAuth2 access token for this
	// scope (e.g. api://ops/.default) from the Entra login
	// (DefaultAzureCredential: az login, environment, managed identity).
	APIScope string
	// LocalURL, when set, bypasses the relay and talks to an ops server's
	// --local-listen port directly (development).
	LocalURL string
	// Output is table or json.
	Output string
	// Timeout bounds each API request.
	Timeout time.Duration
	// Tenant is the tenant whose workspaces, runs and agents commands work
	// on.
	Tenant string

	// File is the config file read ("" if none); Profile the profile
	// applied from it ("" if none) and ProfileSource where its name came
	// from.
	File, Profile, ProfileSource string

	sources map[string]string
}

// Source says where the value of a setting came from: "flag --x",
// "env OPSBOT_X", "profile <name> in <path>", "file <path>" or "default".
func (c *Config) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return "default"
}

// Setting describes one configuration value.
type Setting struct {
	// Key is the file key; the flag is Key with '-' for '_', the
	// environment variable OPSBOT_ + upper-case Key.
	Key    string
	Usage  string
	Secret bool
	get    func(*Config) string
	set    func(*Config, string) error
}

// Flag is the setting's command-line flag name.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Key, "_", "-") }

// Env is the setting's environment variable.
func (s Setting) Env() string { return "OPSBOT_" + strings.ToUpper(s.Key) }

// Get returns the value in c as a string for showing: a secret setting
// wholly redacted, any other with every credential in it redacted (see
// Config.Redact), since a connection string or URL can carry one.
func (s Setting) Get(c *Config) string {
	v := s.get(c)
	if s.Secret && v != "" {
		return Redacted
	}
	return c.Redact(v)
}

func str(p func(*Config) *string) (func(*Config) string, func(*Config, string) error) {
	return func(c *Config) string { return *p(c) }, func(c *Config, v string) error { *p(c) = v; return nil }
}

func settings() []Setting {
	s := func(key, usage string, secret bool, p func(*Config) *string) Setting {
		get, set := str(p)
		return Setting{Key: key, Usage: usage, Secret: secret, get: get, set: set}
	}
	return []Setting{
		s("namespace", "Relay namespace: bare name, host, or connection string", false, func(c *Config) *string { return &c.Namespace }),
		s("cloud", "Azure cloud for a bare namespace name: public, usgovernment, china", false, func(c *Config) *string { return &c.Cloud }),
		s("hybrid_connection", "hybrid connection the ops server listens on", false, func(c *Config) *string { return &c.HybridConnection }),
		s("relay_auth", "relay authentication: sas or entra (DefaultAzureCredential)", false, func(c *Config) *string { return &c.RelayAuth }),
		s("key_name", "SAS rule name (Send right)", false, func(c *Config) *string { return &c.KeyName }),
		s("key", "SAS key (prefer the environment or the config file to a flag)", true, func(c *Config) *string { return &c.Key }),
		{
			Key: "relay_insecure", Usage: "allow ws:// to a local test relay (never for Azure)",
			get: func(c *Config) string { return strconv.FormatBool(c.RelayInsecure) },
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%q is not a boolean", v)
				}
				c.RelayInsecure = b
				return nil
			},
		},
		s("api_key", "operator API key or OAuth2 access token (prefer the environment or the config file to a flag)", true, func(c *Config) *string { return &c.APIKey }),
		s("api_scope", "instead of api_key: get an operator token for this OAuth2 scope (e.g. api://ops/.default) with the Entra login", false, func(c *Config) *string { return &c.APIScope }),
		s("local_url", "talk to an ops server's --local-listen URL directly, bypassing the relay (development)", false, func(c *Config) *string { return &c.LocalURL }),
		s("output", "output format: table or json", false, func(c *Config) *string { return &c.Output }),
		s("tenant", "tenant whose workspaces, runs and agents to work on", false, func(c *Config) *string { return &c.Tenant }),
		{
			Key: "timeout", Usage: "timeout of each API request",
			get: func(c *Config) string { return c.Timeout.String() },
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%q is not a duration", v)
				}
				c.Timeout = d
				return nil
			},
		},
	}
}

// Settings lists every setting, for help texts and `config show`.
func Settings() []Setting { return settings() }

func defaults() *Config {
	return &Config{
		Cloud:     "public",
		RelayAuth: RelayAuthSAS,
		Output:    OutputTable,
		Timeout:   30 * time.Second,
		sources:   map[string]string{},
	}
}

// RegisterFlags adds a flag per setting (and --config) to fs. Flag defaults
// are empty: defaults are applied by Resolve, below the file and the
// environment.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (default $XDG_CONFIG_HOME/opsbot/config.yaml, env OPSBOT_CONFIG)")
	fs.String("profile", "", "named profile of the config file: its settings over the file's (env OPSBOT_PROFILE)")
	for _, s := range settings() {
		usage := s.Usage + " (env " + s.Env() + ")"
		if s.Key == "output" {
			fs.StringP(s.Flag(), "o", "", usage)
			continue
		}
		if s.Key == "relay_insecure" {
			fs.Bool(s.Flag(), false, usage)
			continue
		}
		fs.String(s.Flag(), "", usage)
	}
}

// Resolve builds the config from flags (flags registered by RegisterFlags),
// the environment (lookup, normally os.LookupEnv) and the config file. It
// returns warnings (for example a config file holding secrets that others
// can read) and validates the result; on a validation error the config is
// returned with it.
func Resolve(flags *pflag.FlagSet, lookup func(string) (string, bool)) (*Config, []string, error) {
	c := defaults()
	var warnings []string

	path, explicit := "", false
	if f := flags.Lookup("config"); f != nil && f.Changed {
		path, explicit = f.Value.String(), true
	} else if v, ok := lookup("OPSBOT_CONFIG"); ok && v != "" {
		path, explicit = v, true
	}
	if !explicit {
		path = findDefaultFile(lookup)
	}
	var file *fileConfig
	if path != "" {
		var err error
		file, err = readFile(path)
		if err != nil && (explicit || !errors.Is(err, fs.ErrNotExist)) {
			return nil, nil, err
		}
	}
	if file != nil {
		c.File = path
		if err := c.apply(file.settings, "file "+path); err != nil {
			return nil, nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	profile, from := "", ""
	if f := flags.Lookup("profile"); f != nil && f.Changed {
		profile, from = f.Value.String(), "flag --profile"
	} else if v, ok := lookup("OPSBOT_PROFILE"); ok && v != "" {
		profile, from = v, "env OPSBOT_PROFILE"
	} else if file != nil && file.profile != "" {
		profile, from = file.profile, "file "+path
	}
	if profile != "" {
		if err := c.applyProfile(file, path, profile); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", from, err)
		}
		c.Profile, c.ProfileSource = profile, from
	}
	if file != nil {
		warnings = append(warnings, file.warnings(path)...)
	}
	for _, s := range settings() {
		if v, ok := lookup(s.Env()); ok && v != "" {
			if err := s.set(c, v); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", s.Env(), err)
			}
			c.sources[s.Key] = "env " + s.Env()
		}
	}
	for _, s := range settings() {
		f := flags.Lookup(s.Flag())
		if f == nil || !f.Changed {
			continue
		}
		if err := s.set(c, f.Value.String()); err != nil {
			return nil, nil, fmt.Errorf("--%s: %w", s.Flag(), err)
		}
		c.sources[s.Key] = "flag --" + s.Flag()
	}
	if err := c.Validate(); err != nil {
		// The config is returned too, so that `config show` can show what
		// is wrong.
		return c, warnings, err
	}
	return c, warnings, nil
}

// Validate reports the first invalid setting, by its file key.
func (c Config) Validate() error {
	switch c.Output {
	case OutputTable, OutputJSON:
	default:
		return fmt.Errorf("output: %q must be table or json", c.Output)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("timeout: %s must be positive", c.Timeout)
	}
	if c.APIKey != "" && c.APIScope != "" {
		return errors.New("api_key and api_scope: give one")
	}
	if c.LocalURL != "" {
		return checkLocalURL(c.LocalURL)
	}
	if c.Namespace == "" {
		return errors.New("namespace: required (or local_url for a local ops server); set --namespace, OPSBOT_NAMESPACE or namespace in the config file")
	}
	ns, err := c.ParseNamespace()
	if err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if c.HybridConnection == "" && ns.EntityPath == "" {
		return errors.New("hybrid_connection: required (or EntityPath in the namespace connection string)")
	}
	switch c.RelayAuth {
	case RelayAuthSAS:
		if (c.KeyName == "") != (c.Key == "") {
			return errors.New("key_name and key: give both or neither")
		}
		if c.KeyName == "" && ns.KeyName == "" && ns.SharedAccessSignature == "" {
			return errors.New("key: relay_auth sas needs key_name and key (or a connection string with SharedAccessKeyName and SharedAccessKey); or set relay_auth entra")
		}
	case RelayAuthEntra:
		if c.Key != "" {
			return errors.New("key: relay_auth entra does not use a SAS key; remove it or set relay_auth sas")
		}
	default:
		return fmt.Errorf("relay_auth: %q must be sas or entra", c.RelayAuth)
	}
	return nil
}

// ParseNamespace parses Namespace in Cloud.
func (c *Config) ParseNamespace() (relay.Namespace, error) {
	cloud, err := relay.CloudByName(c.Cloud)
	if err != nil {
		return relay.Namespace{}, err
	}
	return relay.ParseNamespace(c.Namespace, relay.InCloud(cloud))
}

// checkLocalURL allows http only to loopback: the API key must not cross a
// network in clear text.
func checkLocalURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("local_url: %q must be an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("local_url: %q: plain http is allowed only to a loopback address", s)
	}
	return fmt.Errorf("local_url: %q must use http or https", s)
}
