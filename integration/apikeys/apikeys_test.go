// Package apikeys checks the operator API keys table (runtime/operatorauth
// TableStore) on Azurite: keys created, verified, rotated and revoked
// through one server replica are in force on another within the re-check
// interval, and concurrent edits of one key never interleave.
package apikeys

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/registry"
)

// sharedAzurite serves each test a storage account of its own: the tests
// run at once, and one emulator starts instead of three.
var sharedAzurite = &azurite.Shared{Accounts: 8}

func TestMain(m *testing.M) {
	code := procs.Run(m)
	_ = sharedAzurite.Stop()
	os.Exit(code)
}

// The first admin key of an Azure deployment is made in the keys table
// with `opsserver apikey create --keys-table`, and a server reading the
// table accepts it; revoking it the same way ends it.
func TestBootstrapAdminKeyInTheTable(t *testing.T) {
	t.Parallel() // each test has its own storage account
	bin := procs.Build(t, "opsserver")
	emu := sharedAzurite.Account(t)
	ctx := context.Background()
	apikey := func(args ...string) (string, error) { return runAPIKey(ctx, bin, emu, args...) }
	key, err := apikey("create", "--id", "root", "--admin", "--description", "bootstrap")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, "obk_root."), "the key is printed once: %q", key)

	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	store, err := operatorauth.OpenKeysTable(ctx, svc, "boteapikeys", false)
	require.NoError(t, err)
	auth, err := operatorauth.New(ctx, operatorauth.Config{Keys: store})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/v1/status", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	p, err := auth.Authenticate(r)
	require.NoError(t, err)
	assert.True(t, p.IsAdmin())

	_, err = apikey("create", "--id", "root", "--admin")
	assert.ErrorContains(t, err, "already exists")
	list, err := apikey("list")
	require.NoError(t, err)
	assert.Contains(t, list, "root")
	assert.Contains(t, list, "active")
	_, err = apikey("revoke", "--id", "root")
	require.NoError(t, err)
	require.NoError(t, auth.Reload(ctx))
	_, err = auth.Authenticate(r)
	assert.ErrorContains(t, err, "disabled")
}

// runAPIKey runs `opsserver apikey ARGS` on the keys table of emu and
// returns what it printed on stdout.
func runAPIKey(ctx context.Context, bin string, emu *azurite.Emulator, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"apikey"}, append(args, "--keys-table", operatorauth.DefaultKeysTable, "--storage-connection-string", emu.ConnectionString)...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", errors.New(err.Error() + ": " + errOut.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// Two ops server processes on one keys table, as the stack's replicas:
// a key created through one is accepted by the other, and a key revoked
// through one is refused by the other within its re-check interval
// (--api-keys-recheck, 500 ms here; 5 s by default).
func TestTwoServersShareTheKeysTable(t *testing.T) {
	t.Parallel()
	bin := procs.Build(t, "opsserver")
	emu := sharedAzurite.Account(t)
	ctx := context.Background()
	root, err := runAPIKey(ctx, bin, emu, "create", "--id", "root", "--admin")
	require.NoError(t, err)
	data, err := registry.Marshal(nil)
	require.NoError(t, err)
	reg := filepath.Join(t.TempDir(), "registry.json")
	require.NoError(t, os.WriteFile(reg, data, 0o644))
	const recheck = 500 * time.Millisecond
	start := func(name string) *procs.Process {
		return procs.Start(t, procs.Spec{Name: name, Path: bin, Args: []string{"--no-relay", "--local-listen", "127.0.0.1:0",
			"--api-keys-table", operatorauth.DefaultKeysTable, "--api-keys-recheck", recheck.String(), "--registry", reg, "--shutdown-timeout", "5s"},
			Env: []string{"BOTE_OPSSERVER_STORAGE_CONNECTION_STRING=" + emu.ConnectionString}})
	}
	a, b := start("opsserver-a"), start("opsserver-b") // both start at once
	urlA, err := a.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	urlB, err := b.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	client := func(url, key string) *opsclient.Client {
		c, err := opsclient.New(opsclient.Config{BaseURL: url, Credential: key})
		require.NoError(t, err)
		return c
	}
	nk, err := client(urlA, root).CreateKey(ctx, opsapi.CreateKeyRequest{ID: "alice", Tenants: map[string]operatorauth.Role{"contoso": operatorauth.RoleOperator}})
	require.NoError(t, err, "key management works on a table-backed server (no 503)")
	alice := client(urlB, nk.Key)
	require.Eventually(t, func() bool { _, err := alice.Whoami(ctx); return err == nil }, 10*time.Second, 100*time.Millisecond,
		"the other server accepts the new key")
	_, err = client(urlB, root).RevokeKey(ctx, "alice")
	require.NoError(t, err)
	_, err = alice.Whoami(ctx)
	require.Error(t, err, "refused at once where revoked")
	aliceA := client(urlA, nk.Key)
	revoked := time.Now()
	require.Eventually(t, func() bool { _, err := aliceA.Whoami(ctx); return err != nil }, 10*time.Second, 100*time.Millisecond,
		"the other server refuses it within its re-check interval")
	assert.Less(t, time.Since(revoked), 7*time.Second)
}

func TestKeysTable(t *testing.T) {
	t.Parallel()
	emu := sharedAzurite.Account(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	n := 0
	// replicas opens a fresh table and two authenticators on it, as two
	// ops server replicas, each re-reading the table every 50 ms.
	replicas := func(t *testing.T) (a, b *operatorauth.Authenticator) {
		n++
		name := "apikeys" + strings.Repeat("x", n)
		open := func() *operatorauth.Authenticator {
			store, err := operatorauth.OpenKeysTable(ctx, svc, name, true)
			require.NoError(t, err)
			auth, err := operatorauth.New(ctx, operatorauth.Config{Keys: store})
			require.NoError(t, err)
			go auth.Watch(ctx, 50*time.Millisecond)
			return auth
		}
		return open(), open()
	}
	verify := func(a *operatorauth.Authenticator, key string) (operatorauth.Principal, error) {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		return a.Authenticate(r)
	}
	acme := operatorauth.Grants{Tenants: map[string]operatorauth.Role{"acme": operatorauth.RoleOperator}}

	t.Run("LifecycleSeenByTheOtherReplica", func(t *testing.T) {
		a, b := replicas(t)
		key, info, err := a.CreateKey(ctx, "alice", "laptop", acme)
		require.NoError(t, err)
		assert.Equal(t, "alice", info.ID)
		p, err := verify(a, key)
		require.NoError(t, err, "in force at once on the replica that created it")
		assert.Equal(t, acme, p.Grants)
		require.Eventually(t, func() bool { _, err := verify(b, key); return err == nil }, 5*time.Second, 20*time.Millisecond,
			"the other replica accepts it within its re-check interval")
		p, err = verify(b, key)
		require.NoError(t, err)
		assert.Equal(t, acme, p.Grants, "grants are stored with the key")
		list, err := b.ListKeys(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "laptop", list[0].Description)

		_, _, err = b.CreateKey(ctx, "alice", "", acme)
		require.ErrorIs(t, err, operatorauth.ErrKeyExists, "an id is created once, whichever replica is asked")

		newKey, _, err := b.RotateKey(ctx, "alice")
		require.NoError(t, err)
		require.NoError(t, func() error { _, err := verify(b, newKey); return err }())
		_, err = verify(b, key)
		require.ErrorIs(t, err, operatorauth.ErrUnauthenticated, "the old secret is refused at once where rotated")
		require.Eventually(t, func() bool { _, err := verify(a, key); return err != nil }, 5*time.Second, 20*time.Millisecond,
			"and on the other replica within its re-check interval")
		_, err = verify(a, newKey)
		require.NoError(t, err)

		info, err = a.RevokeKey(ctx, "alice")
		require.NoError(t, err)
		assert.True(t, info.Disabled)
		_, err = verify(a, newKey)
		require.ErrorContains(t, err, "disabled")
		require.Eventually(t, func() bool { _, err := verify(b, newKey); return err != nil }, 5*time.Second, 20*time.Millisecond,
			"a revocation reaches every replica within the re-check interval")
		_, _, err = b.RotateKey(ctx, "alice")
		require.ErrorIs(t, err, operatorauth.ErrKeyRevoked, "a revoked key cannot be rotated back to life")
		_, err = a.RevokeKey(ctx, "nobody")
		require.ErrorIs(t, err, operatorauth.ErrKeyNotFound)
	})

	t.Run("ConcurrentRotateAndRevokeNeverInterleave", func(t *testing.T) {
		a, b := replicas(t)
		_, _, err := a.CreateKey(ctx, "bob", "", acme)
		require.NoError(t, err)
		// Rotations on one replica race a revocation on the other. Without
		// conditional writes a rotation that read the key before the
		// revocation would write it back enabled with a new secret.
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			rotated []string
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key, _, err := a.RotateKey(ctx, "bob")
				if err != nil {
					assert.True(t, errors.Is(err, operatorauth.ErrKeyRevoked), "a rotation after the revocation is refused: %v", err)
					return
				}
				mu.Lock()
				rotated = append(rotated, key)
				mu.Unlock()
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.RevokeKey(ctx, "bob")
			assert.NoError(t, err)
		}()
		wg.Wait()
		list, err := a.ListKeys(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.True(t, list[0].Disabled, "the revocation stands whatever the order")
		require.NoError(t, a.Reload(ctx))
		require.NoError(t, b.Reload(ctx))
		for _, key := range rotated {
			for _, r := range []*operatorauth.Authenticator{a, b} {
				_, err := verify(r, key)
				assert.ErrorIs(t, err, operatorauth.ErrUnauthenticated, "no secret drawn in the race is accepted")
			}
		}
	})

	t.Run("ARotationThatReadBeforeARevocationStartsOver", func(t *testing.T) {
		a, b := replicas(t)
		_, _, err := a.CreateKey(ctx, "dave", "", acme)
		require.NoError(t, err)
		store, err := operatorauth.OpenKeysTable(ctx, svc, "apikeys"+strings.Repeat("x", n), false)
		require.NoError(t, err)
		attempts := 0
		_, err = store.Edit(ctx, "dave", func(f *operatorauth.KeysFile, now time.Time) error {
			attempts++
			if attempts == 1 {
				// Another replica revokes the key between this edit's read
				// and its write.
				_, err := b.RevokeKey(ctx, "dave")
				require.NoError(t, err)
			}
			_, err := f.RotateKey("dave", now)
			return err
		})
		require.ErrorIs(t, err, operatorauth.ErrKeyRevoked, "the rotation starts over from the revoked key and is refused")
		assert.Equal(t, 2, attempts)
		list, err := a.ListKeys(ctx)
		require.NoError(t, err)
		assert.True(t, list[0].Disabled, "the revocation stands")
	})

	t.Run("ABrokenEntityKeepsThePreviousKeys", func(t *testing.T) {
		a, _ := replicas(t)
		key, _, err := a.CreateKey(ctx, "carol", "", acme)
		require.NoError(t, err)
		tbl := svc.NewClient("apikeys" + strings.Repeat("x", n))
		_, err = tbl.AddEntity(ctx, []byte(`{"PartitionKey":"apikey","RowKey":"Bad Id","Version":1}`), nil)
		require.NoError(t, err)
		require.ErrorContains(t, a.Reload(ctx), `invalid API key "Bad Id"`)
		_, err = verify(a, key)
		assert.NoError(t, err, "the keys in force stay")
		_, _, err = a.RotateKey(ctx, "carol")
		assert.ErrorContains(t, err, `invalid API key "Bad Id"`, "and nothing is written from a store that does not read back")
	})
}
