package connector

import (
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/clientauth"
)

// Environment variables ConfigFromEnv reads.
const (
	EnvWorkerURL = "BOTE_WORKER_URL" // the worker's base URL
	EnvTokenURL  = "BOTE_TOKEN_URL"  // the idp's token endpoint
	EnvTenant    = "BOTE_TENANT"
	EnvConnector = "BOTE_CONNECTOR"
	EnvKeyFile   = "BOTE_KEY_FILE" // PEM file of the connector's EC P-256 private key
)

// ConfigFromEnv returns the Config of a connector from the environment
// (read with getenv, os.Getenv in a program): EnvWorkerURL, EnvTokenURL,
// EnvTenant, EnvConnector and EnvKeyFile. The caller sets Handler (and
// anything else) before New.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var missing []error
	for _, name := range []string{EnvWorkerURL, EnvTokenURL, EnvTenant, EnvConnector, EnvKeyFile} {
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
	return Config{WorkerURL: getenv(EnvWorkerURL), TokenURL: getenv(EnvTokenURL), Tenant: getenv(EnvTenant), Connector: getenv(EnvConnector), Key: key}, nil
}
