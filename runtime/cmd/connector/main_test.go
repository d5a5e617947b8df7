package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/registry"
)

func TestKeygenWritesPrivateKeyAndPrintsPublicJWK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"keygen", "--out", path}, nil, &out, io.Discard, noEnv))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	key, err := clientauth.LoadKeyFile(path)
	require.NoError(t, err)

	pub, err := registry.ParsePublicJWK(bytes.TrimSpace(out.Bytes()))
	require.NoError(t, err, "the printed JWK is what the registry accepts")
	assert.True(t, pub.Equal(&key.PublicKey))
	assert.NotContains(t, out.String(), `"d"`)

	assert.Error(t, run(context.Background(), []string{"keygen", "--out", path}, nil, &out, io.Discard, noEnv), "never overwrites a registered key")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"fly"}, {"keygen"}, {"run", "--gateway-url", "http://w"}} {
		assert.Error(t, run(context.Background(), args, nil, &bytes.Buffer{}, io.Discard, noEnv), "%v", args)
	}
}

func noEnv(string) string { return "" }

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--version"}, nil, &out, io.Discard, noEnv))
	assert.Regexp(t, `^connector \S+`, out.String())
}

// --cloud-key takes the public JWK keygen prints; anything else is refused
// before the sidecar starts.
func TestCloudKeyFlag(t *testing.T) {
	dir := t.TempDir()
	var jwk bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"keygen", "--out", filepath.Join(dir, "cloud.pem")}, nil, &jwk, io.Discard, noEnv))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cloud.jwk"), jwk.Bytes(), 0o644))
	pub, err := loadPublicKey(filepath.Join(dir, "cloud.jwk"))
	require.NoError(t, err)
	assert.NotNil(t, pub)

	require.NoError(t, run(context.Background(), []string{"keygen", "--out", filepath.Join(dir, "me.pem")}, nil, io.Discard, io.Discard, noEnv))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.jwk"), []byte(`{"kty":"RSA"}`), 0o644))
	err = run(context.Background(), []string{"run", "--gateway-url", "http://127.0.0.1:1", "--token-url", "http://127.0.0.1:1/t", "--tenant", "t", "--connector", "c",
		"--key", filepath.Join(dir, "me.pem"), "--deliver-to", "http://127.0.0.1:1/in", "--cloud-key", filepath.Join(dir, "bad.jwk")}, nil, io.Discard, io.Discard, noEnv)
	assert.ErrorContains(t, err, "--cloud-key")
}

// TestGatewayURLNames: the gateway's URL is --gateway-url
// (BOTE_CONNECTOR_GATEWAY_URL); --worker-url and BOTE_CONNECTOR_WORKER_URL,
// its names before the rename, still work with one warning each, and the
// new name wins when both are given (a bad URL shows which one was read).
func TestGatewayURLNames(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(context.Background(), []string{"keygen", "--out", filepath.Join(dir, "me.pem")}, nil, io.Discard, io.Discard, noEnv))
	common := []string{"run", "--token-url", "http://127.0.0.1:1/t", "--tenant", "t", "--connector", "c", "--key", filepath.Join(dir, "me.pem"), "--deliver-to", "http://127.0.0.1:1/in"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // the bad URL that was read
		warn    string // the old name warned about
	}{
		{"new flag", []string{"--gateway-url", "new-bad"}, nil, `"new-bad"`, ""},
		{"old flag", []string{"--worker-url", "old-bad"}, nil, `"old-bad"`, "--worker-url"},
		{"both flags", []string{"--worker-url", "http://w", "--gateway-url", "new-bad"}, nil, `"new-bad"`, "--worker-url"},
		{"new variable", nil, map[string]string{"BOTE_CONNECTOR_GATEWAY_URL": "new-bad"}, `"new-bad"`, ""},
		{"old variable", nil, map[string]string{"BOTE_CONNECTOR_WORKER_URL": "old-bad"}, `"old-bad"`, "BOTE_CONNECTOR_WORKER_URL"},
		{"both variables", nil, map[string]string{"BOTE_CONNECTOR_WORKER_URL": "http://w", "BOTE_CONNECTOR_GATEWAY_URL": "new-bad"}, `"new-bad"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append(common, tt.args...), nil, io.Discard, &stderr, func(k string) string { return tt.env[k] })
			assert.ErrorContains(t, err, "GatewayURL "+tt.wantErr)
			if tt.warn == "" {
				assert.NotContains(t, stderr.String(), "deprecated")
				return
			}
			assert.Equal(t, 1, strings.Count(stderr.String(), `"msg":"deprecated name`), stderr.String())
			assert.Contains(t, stderr.String(), `"old":"`+tt.warn+`"`)
		})
	}
}

// --retry-delay is the connector's RetryDelay: whole seconds, refused
// otherwise before the sidecar starts.
func TestRetryDelayFlag(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(context.Background(), []string{"keygen", "--out", filepath.Join(dir, "me.pem")}, nil, io.Discard, io.Discard, noEnv))
	for _, bad := range []string{"1500ms", "-1s"} {
		err := run(context.Background(), []string{"run", "--gateway-url", "http://127.0.0.1:1", "--token-url", "http://127.0.0.1:1/t", "--tenant", "t", "--connector", "c",
			"--key", filepath.Join(dir, "me.pem"), "--deliver-to", "http://127.0.0.1:1/in", "--retry-delay", bad}, nil, io.Discard, io.Discard, noEnv)
		assert.ErrorContains(t, err, "RetryDelay", bad)
	}
}
