package connector

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/sessionproto"
)

func TestConfigFromEnv(t *testing.T) {
	_, err := ConfigFromEnv(func(string) string { return "" })
	require.Error(t, err)
	for _, name := range []string{EnvGatewayURL, EnvWorkerURL, EnvTokenURL, EnvTenant, EnvConnector, EnvKeyFile} {
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

	assert.Equal(t, "http://127.0.0.1:1", cfg.GatewayURL, "the old name is still read")
	assert.Equal(t, []envflag.Deprecation{{Old: EnvWorkerURL, New: EnvGatewayURL}}, cfg.deprecated)

	env[EnvGatewayURL] = "http://127.0.0.1:3"
	cfg, err = ConfigFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:3", cfg.GatewayURL, "the new name wins")
	assert.Empty(t, cfg.deprecated)

	delete(env, EnvWorkerURL)
	cfg, err = ConfigFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:3", cfg.GatewayURL)
	assert.Empty(t, cfg.deprecated)

	env[EnvKeyFile] = filepath.Join(t.TempDir(), "missing.pem")
	_, err = ConfigFromEnv(func(k string) string { return env[k] })
	assert.ErrorContains(t, err, EnvKeyFile)
}

// TestNewWarnsAboutOldNames: a connector configured with BOTE_WORKER_URL
// or Config.WorkerURL (the names before the rename) works and logs one
// warning for each; one configured with the new names logs none.
func TestNewWarnsAboutOldNames(t *testing.T) {
	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, clientauth.WriteKeyFile(file, key))
	base := map[string]string{EnvTokenURL: "http://127.0.0.1:2/oauth2/token", EnvTenant: "contoso", EnvConnector: "agent-1", EnvKeyFile: file}
	tests := []struct {
		name   string
		env    map[string]string
		config func(*Config)
		want   []string // old names warned about
	}{
		{"new variable", map[string]string{EnvGatewayURL: "http://gw"}, nil, nil},
		{"old variable", map[string]string{EnvWorkerURL: "http://gw"}, nil, []string{EnvWorkerURL}},
		{"old field", map[string]string{EnvGatewayURL: "http://gw"}, func(c *Config) { c.WorkerURL, c.GatewayURL = c.GatewayURL, "" }, []string{"connector.Config.WorkerURL"}},
		{"both fields: the new one is used", map[string]string{EnvGatewayURL: "http://gw"}, func(c *Config) { c.WorkerURL = "not a url" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tt.env)
			cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
			require.NoError(t, err)
			if tt.config != nil {
				tt.config(&cfg)
			}
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			cfg.Handler = HandlerFunc(func(context.Context, *Message) error { return nil })
			c, err := New(cfg)
			require.NoError(t, err)
			assert.Equal(t, "ws://gw"+sessionproto.ConnectPath, strings.Split(c.wsURL, "?")[0])
			assert.Equal(t, len(tt.want), strings.Count(logs.String(), `"msg":"deprecated name`), logs.String())
			for _, old := range tt.want {
				assert.Contains(t, logs.String(), `"old":"`+old+`"`)
			}
		})
	}
}
