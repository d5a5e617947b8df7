package connector

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
)

func TestConfigFromEnv(t *testing.T) {
	_, err := ConfigFromEnv(func(string) string { return "" })
	require.Error(t, err)
	for _, name := range []string{EnvWorkerURL, EnvTokenURL, EnvTenant, EnvConnector, EnvKeyFile} {
		assert.ErrorContains(t, err, name+" is not set")
	}

	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, clientauth.WriteKeyFile(file, key))
	env := map[string]string{EnvWorkerURL: "http://127.0.0.1:1", EnvTokenURL: "http://127.0.0.1:2/oauth2/token", EnvTenant: "contoso", EnvConnector: "agent-1", EnvKeyFile: file}
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, "contoso", cfg.Tenant)
	assert.True(t, key.Equal(cfg.Key))

	env[EnvKeyFile] = filepath.Join(t.TempDir(), "missing.pem")
	_, err = ConfigFromEnv(func(k string) string { return env[k] })
	assert.ErrorContains(t, err, EnvKeyFile)
}
