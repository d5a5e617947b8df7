package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/registry"
)

func TestKeygenWritesPrivateKeyAndPrintsPublicJWK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	var out bytes.Buffer
	require.NoError(t, run([]string{"keygen", "--out", path}, &out))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	key, err := clientauth.LoadKeyFile(path)
	require.NoError(t, err)

	pub, err := registry.ParsePublicJWK(bytes.TrimSpace(out.Bytes()))
	require.NoError(t, err, "the printed JWK is what the registry accepts")
	assert.True(t, pub.Equal(&key.PublicKey))
	assert.NotContains(t, out.String(), `"d"`)

	assert.Error(t, run([]string{"keygen", "--out", path}, &out), "never overwrites a registered key")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"fly"}, {"keygen"}, {"run", "--worker-url", "http://w"}} {
		assert.Error(t, run(args, &bytes.Buffer{}), "%v", args)
	}
}
