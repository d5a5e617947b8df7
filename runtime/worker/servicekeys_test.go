package worker

import (
	"crypto/ecdsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
)

func TestParseServiceKeys(t *testing.T) {
	k1, err := clientauth.GenerateKey()
	require.NoError(t, err)
	k2, err := clientauth.GenerateKey()
	require.NoError(t, err)
	jwk := func(k *ecdsa.PrivateKey) string {
		out, err := clientauth.PublicJWK(k, "")
		require.NoError(t, err)
		return string(out)
	}
	good := `{"relayserver":[` + jwk(k1) + `,` + jwk(k2) + `],"billing":[` + jwk(k2) + `]}`
	keys, err := ParseServiceKeys([]byte(good))
	require.NoError(t, err)
	assert.Len(t, keys["relayserver"], 2)
	assert.True(t, keys["relayserver"][0].Equal(&k1.PublicKey))
	assert.True(t, keys["billing"][0].Equal(&k2.PublicKey))

	var private map[string]any
	require.NoError(t, json.Unmarshal([]byte(jwk(k1)), &private))
	private["d"] = "AAAA"
	privJSON, err := json.Marshal(private)
	require.NoError(t, err)
	for name, tc := range map[string]struct{ data, want string }{
		"not JSON":      {`{`, "decode"},
		"trailing data": {good + `{}`, "after"},
		"empty":         {`{}`, "no service"},
		"bad name":      {`{"bad name":[` + jwk(k1) + `]}`, "service"},
		"no key":        {`{"relayserver":[]}`, "relayserver: no key"},
		"not a key":     {`{"relayserver":[{"kty":"RSA"}]}`, "relayserver[0]"},
		"private key":   {`{"relayserver":[` + string(privJSON) + `]}`, "relayserver[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseServiceKeys([]byte(tc.data))
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err = LoadServiceKeys(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorContains(t, err, "cannot read")
	path := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o600))
	_, err = LoadServiceKeys(path)
	assert.ErrorContains(t, err, path)
}

// FuzzParseServiceKeys: the worker's service keys file never panics the
// parser, and every service it accepts has at least one key.
func FuzzParseServiceKeys(f *testing.F) {
	f.Add([]byte(`{"relayserver":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseServiceKeys(data)
		if err != nil {
			return
		}
		for name, ks := range keys {
			if len(ks) == 0 {
				t.Fatalf("%s accepted without a key", name)
			}
		}
	})
}
