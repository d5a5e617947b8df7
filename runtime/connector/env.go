package connector

import (
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envflag"
)

// Environment variables ConfigFromEnv reads.
const (
	EnvGatewayURL = "BOTE_GATEWAY_URL" // the gateway's base URL
	EnvTokenURL   = "BOTE_TOKEN_URL"   // the idp's token endpoint
	EnvTenant     = "BOTE_TENANT"
	EnvConnector  = "BOTE_CONNECTOR"
	EnvKeyFile    = "BOTE_KEY_FILE" // PEM file of the connector's EC P-256 private key

	// EnvWorkerURL is EnvGatewayURL's name from before the rename, read
	// when EnvGatewayURL is not set (New logs a warning).
	//
	// Deprecated: set EnvGatewayURL; EnvWorkerURL goes in a later release.
	EnvWorkerURL = "BOTE_WORKER_URL"
)

// ConfigFromEnv returns the Config of a connector from the environment
// (read with getenv, os.Getenv in a program): EnvGatewayURL (or the
// deprecated EnvWorkerURL), EnvTokenURL, EnvTenant, EnvConnector and
// EnvKeyFile. The caller sets Handler (and anything else) before New.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	if cfg.GatewayURL = getenv(EnvGatewayURL); cfg.GatewayURL == "" {
		if cfg.GatewayURL = getenv(EnvWorkerURL); cfg.GatewayURL != "" {
			cfg.deprecated = []envflag.Deprecation{{Old: EnvWorkerURL, New: EnvGatewayURL}}
		}
	}
	var missing []error
	if cfg.GatewayURL == "" {
		missing = append(missing, fmt.Errorf("%s is not set (its old name %s is not set either)", EnvGatewayURL, EnvWorkerURL))
	}
	for _, name := range []string{EnvTokenURL, EnvTenant, EnvConnector, EnvKeyFile} {
		if getenv(name) == "" {
			missing = append(missing, fmt.Errorf("%s is not set", name))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return Config{}, fmt.Errorf("connector config from the environment: %w", err)
	}
	key, err := clientauth.LoadKeyFile(getenv(EnvKeyFile))
	if err != nil {
		return Config{}, fmt.Errorf("connector config from the environment: %s: %w", EnvKeyFile, err)
	}
	cfg.TokenURL, cfg.Tenant, cfg.Connector, cfg.Key = getenv(EnvTokenURL), getenv(EnvTenant), getenv(EnvConnector), key
	return cfg, nil
}
