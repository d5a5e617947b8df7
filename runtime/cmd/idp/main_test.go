package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(t *testing.T, o options)
		err  string
	}{
		{"required only", []string{"--registry", "r.json", "--key-dir", "k"}, nil, func(t *testing.T, o options) {
			assert.Equal(t, "127.0.0.1:8081", o.listen)
			assert.Equal(t, 10*time.Minute, o.tokenTTL)
			assert.Equal(t, "bote", o.audience)
		}, ""},
		{"environment", nil, map[string]string{
			"BOTE_IDP_REGISTRY": "r.json", "BOTE_IDP_KEY_DIR": "k", "BOTE_IDP_TOKEN_TTL": "5m", "BOTE_IDP_ROTATE_EVERY": "1h",
		}, func(t *testing.T, o options) {
			assert.Equal(t, 5*time.Minute, o.tokenTTL)
			assert.Equal(t, time.Hour, o.rotateEvery)
		}, ""},
		{"flag wins over environment", []string{"--token-ttl", "2m"}, map[string]string{
			"BOTE_IDP_REGISTRY": "r.json", "BOTE_IDP_KEY_DIR": "k", "BOTE_IDP_TOKEN_TTL": "5m",
		}, func(t *testing.T, o options) { assert.Equal(t, 2*time.Minute, o.tokenTTL) }, ""},
		{"bad environment", nil, map[string]string{"BOTE_IDP_TOKEN_TTL": "soon"}, nil, "BOTE_IDP_TOKEN_TTL"},
		{"no registry", []string{"--key-dir", "k"}, nil, nil, "--registry"},
		{"no key store", []string{"--registry", "r.json"}, nil, nil, "--key-dir (BOTE_IDP_KEY_DIR) or --key-vault-url"},
		{"registry blob", []string{"--registry-url", "https://acct.blob.core.usgovcloudapi.net/bote-registry/connectors.json", "--key-dir", "k"}, nil,
			func(t *testing.T, o options) { assert.Contains(t, o.registryURL, "usgovcloudapi") }, ""},
		{"file and blob", []string{"--registry", "r.json", "--key-dir", "k"}, map[string]string{"BOTE_IDP_REGISTRY_URL": "https://x/y"}, nil, "exclusive"},
		{"stray argument", []string{"--registry", "r", "--key-dir", "k", "extra"}, nil, nil, "unexpected arguments"},
		{"keys in key vault, replay table in azure", []string{"--registry", "r.json"}, map[string]string{
			"BOTE_IDP_KEY_VAULT_URL":    "https://bote-gov-idp-kv.vault.usgovcloudapi.net/",
			"BOTE_IDP_REPLAY_TABLE_URL": "https://botegovst.table.core.usgovcloudapi.net/botereplay",
		}, func(t *testing.T, o options) {
			assert.Equal(t, "https://bote-gov-idp-kv.vault.usgovcloudapi.net/", o.keyVaultURL)
			assert.Equal(t, "https://botegovst.table.core.usgovcloudapi.net/botereplay", o.replayURL)
			assert.Empty(t, o.keyDir)
		}, ""},
		{"key dir and key vault", []string{"--registry", "r.json", "--key-dir", "k", "--key-vault-url", "https://v"}, nil, nil, "--key-dir and --key-vault-url are exclusive"},
		{"two replay tables", []string{"--registry", "r.json", "--key-dir", "k", "--replay-table-url", "https://t/x", "--replay-connection-string", "UseDevelopmentStorage=true"}, nil, nil, "exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			tt.want(t, o)
		})
	}
}

func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry.json")
	require.NoError(t, os.WriteFile(reg, []byte(`{"version":1,"connectors":[]}`), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--registry", reg, "--key-dir", filepath.Join(dir, "keys")}, nil, pw, io.Discard, func(string) string { return "" })
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go io.Copy(io.Discard, pr)

	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(15 * time.Second):
		t.Fatal("idp did not stop")
	}
	_, err = os.Stat(filepath.Join(dir, "keys", "keys.json"))
	assert.NoError(t, err, "signing keys persisted")
}
