package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseKeySet(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pub := func(k *ecdsa.PrivateKey) string { return string(jwk(t, &k.PublicKey)) }
	good := `{"relayserver":[` + pub(k1) + `,` + pub(k2) + `],"billing":[` + pub(k2) + `]}`
	keys, err := ParseKeySet([]byte(good))
	require.NoError(t, err)
	assert.Len(t, keys["relayserver"], 2)
	assert.True(t, keys["relayserver"][0].Equal(&k1.PublicKey))
	assert.True(t, keys["billing"][0].Equal(&k2.PublicKey))

	var private map[string]any
	require.NoError(t, json.Unmarshal(jwk(t, k1), &private))
	private["d"] = "AAAA"
	privJSON, err := json.Marshal(private)
	require.NoError(t, err)
	for name, tc := range map[string]struct{ data, want string }{
		"not JSON":      {`{`, "decode"},
		"trailing data": {good + `{}`, "after"},
		"empty":         {`{}`, "no name"},
		"bad name":      {`{"bad name":[` + pub(k1) + `]}`, "name"},
		"no key":        {`{"relayserver":[]}`, "relayserver: no key"},
		"not a key":     {`{"relayserver":[{"kty":"RSA"}]}`, "relayserver[0]"},
		"private key":   {`{"relayserver":[` + string(privJSON) + `]}`, "relayserver[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKeySet([]byte(tc.data))
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err = LoadKeySet(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorContains(t, err, "cannot read")
	path := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o600))
	_, err = LoadKeySet(path)
	assert.ErrorContains(t, err, path)
}

// FuzzParseKeySet: a key set file (the gateway's cloud service keys, the
// ops server's gateway keys) never panics the parser, and every name it
// accepts has at least one key.
func FuzzParseKeySet(f *testing.F) {
	f.Add([]byte(`{"relayserver":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeySet(data)
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
