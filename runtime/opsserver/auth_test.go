package opsserver

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
)

// TestAPIKeysRecheck: a key revoked in the keys file by someone else (an
// `opsserver apikey revoke`, another replica) is refused within
// --api-keys-recheck, here 50 ms. Within 3 s: with the 5 s default it
// still authenticates then.
func TestAPIKeysRecheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	kf := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	key, err := kf.AddKey("alice", "test", operatorauth.Grants{Admin: true}, time.Now())
	require.NoError(t, err)
	require.NoError(t, kf.Save(path))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	auth, err := openAuth(ctx, Config{APIKeysFile: path, APIKeysRecheck: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	authenticated := func() bool {
		r := httptest.NewRequest("GET", "/v1/whoami", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		_, err := auth.Authenticate(r)
		return err == nil
	}
	require.True(t, authenticated())

	require.NoError(t, kf.RevokeKey("alice", time.Now()))
	require.NoError(t, kf.Save(path))
	require.Eventually(t, func() bool { return !authenticated() }, 3*time.Second, 10*time.Millisecond,
		"the revoked key is refused within --api-keys-recheck")
}
