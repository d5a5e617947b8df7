package opsserver

import (
	"bytes"
	"crypto/ecdsa"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
)

// TestLoadGatewayKeys: the --gateway-keys set holds the gateway's keys
// under "gateway"; "worker", the name before the rename, is still read
// with a warning, and "gateway" wins when both are there.
func TestLoadGatewayKeys(t *testing.T) {
	dir := t.TempDir()
	jwk := func() (string, *ecdsa.PrivateKey) {
		k, err := clientauth.GenerateKey()
		require.NoError(t, err)
		j, err := clientauth.PublicJWK(k, "")
		require.NoError(t, err)
		return string(j), k
	}
	gw, gwKey := jwk()
	old, oldKey := jwk()
	tests := []struct {
		name    string
		set     string
		want    *ecdsa.PrivateKey
		warns   int
		wantErr string
	}{
		{"gateway", `{"gateway":[` + gw + `]}`, gwKey, 0, ""},
		{"worker, deprecated", `{"worker":[` + old + `]}`, oldKey, 1, ""},
		{"both: gateway wins", `{"gateway":[` + gw + `],"worker":[` + old + `]}`, gwKey, 0, ""},
		{"neither", `{"billing":[` + gw + `]}`, nil, 0, `names no "gateway"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i))+".json")
			require.NoError(t, os.WriteFile(path, []byte(tt.set), 0o600))
			var logs bytes.Buffer
			keys, err := loadGatewayKeys(path, slog.New(slog.NewTextHandler(&logs, nil)))
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				assert.ErrorContains(t, err, "--gateway-keys")
				return
			}
			require.NoError(t, err)
			require.Len(t, keys, 1)
			assert.True(t, keys[0].Equal(&tt.want.PublicKey))
			assert.Equal(t, tt.warns, strings.Count(logs.String(), `msg="deprecated name`), logs.String())
		})
	}
	keys, err := loadGatewayKeys("", nil)
	assert.NoError(t, err)
	assert.Nil(t, keys, "no file, no keys")
}
