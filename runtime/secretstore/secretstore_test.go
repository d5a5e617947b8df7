package secretstore

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
)

var sample = runproto.Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "s3cret"}, Vars: map[string]string{"db_password": "hunter2"}}

// contract runs the Store behaviour every implementation shares.
func contract(t *testing.T, s Store) {
	ctx := context.Background()
	got, err := s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.True(t, got.Empty(), "nothing stored yet")

	require.NoError(t, s.Put(ctx, "contoso", "prod", sample))
	got, err = s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, sample, got)

	other, err := s.Get(ctx, "fabrikam", "prod")
	require.NoError(t, err)
	assert.True(t, other.Empty(), "another tenant's workspace of the same name")

	got.Env["ARM_CLIENT_SECRET"] = "changed by caller"
	again, err := s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, "s3cret", again.Env["ARM_CLIENT_SECRET"], "callers get copies")

	require.NoError(t, s.Delete(ctx, "contoso", "prod"))
	require.NoError(t, s.Delete(ctx, "contoso", "prod"), "deleting nothing")
	got, err = s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.True(t, got.Empty())

	// Ids come typed: "../etc" cannot become an ids.TenantID outside
	// tests, so a store has no scope of its own to check.
	_, err = ids.ParseTenantID("../etc")
	assert.ErrorIs(t, err, ids.ErrInvalid)
	assert.ErrorIs(t, s.Put(ctx, "contoso", "prod", runproto.Secrets{Env: map[string]string{"BAD-NAME": "x"}}), ErrInvalid)
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	f, err := OpenFile(path)
	require.NoError(t, err)
	contract(t, f)

	require.NoError(t, f.Put(context.Background(), "contoso", "prod", sample))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary files left behind")

	// A second store over the same file sees the change (re-read on Get).
	g, err := OpenFile(path)
	require.NoError(t, err)
	got, err := g.Get(context.Background(), "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, sample, got)
}

func TestFileConcurrentPuts(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "secrets.json"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for _, ws := range []ids.WorkspaceID{"a", "b", "c", "d"} {
		wg.Go(func() { assert.NoError(t, f.Put(context.Background(), "contoso", ws, sample)) })
	}
	wg.Wait()
	for _, ws := range []ids.WorkspaceID{"a", "b", "c", "d"} {
		got, err := f.Get(context.Background(), "contoso", ws)
		require.NoError(t, err)
		assert.Equal(t, sample, got, ws)
	}
}

func TestFileRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"world readable", `{"version":1,"workspaces":{}}`, 0o644, "owner only"},
		{"not json", `{`, 0o600, "cannot decode"},
		{"unknown field", `{"version":1,"workspaces":{},"extra":1}`, 0o600, "unknown field"},
		{"wrong version", `{"version":2,"workspaces":{}}`, 0o600, "version is 2"},
		{"bad key", `{"version":1,"workspaces":{"no-slash":{"env":{"A":"b"}}}}`, 0o600, "workspace id is empty"},
		{"bad env name", `{"version":1,"workspaces":{"t/w":{"env":{"1A":"b"}}}}`, 0o600, "env name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secrets.json")
			require.NoError(t, os.WriteFile(path, []byte(tt.body), tt.mode))
			require.NoError(t, os.Chmod(path, tt.mode))
			_, err := OpenFile(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := OpenFile("")
	assert.Error(t, err)
}

func TestValidateLimits(t *testing.T) {
	big := strings.Repeat("x", MaxValueBytes+1)
	many := map[string]string{}
	for i := range MaxEntries + 1 {
		many["V"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+strings.Repeat("y", i/26)] = "v"
	}
	total := map[string]string{}
	for i := range 4 {
		total["V"+string(rune('a'+i))] = strings.Repeat("x", MaxValueBytes-10)
	}
	tests := []struct {
		name string
		s    runproto.Secrets
	}{
		{"value too large", runproto.Secrets{Vars: map[string]string{"v": big}}},
		{"too many", runproto.Secrets{Env: many}},
		{"too large in all", runproto.Secrets{Env: total}},
		{"empty name", runproto.Secrets{Env: map[string]string{"": "x"}}},
		{"digit first", runproto.Secrets{Vars: map[string]string{"1x": "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, Validate(tt.s), ErrInvalid)
		})
	}
	assert.NoError(t, Validate(sample))
}

// fakeVault is a Key Vault in memory.
type fakeVault struct {
	mu      sync.Mutex
	secrets map[string]azsecrets.Secret
	fail    error
}

func (f *fakeVault) GetSecret(_ context.Context, name, _ string, _ *azsecrets.GetSecretOptions) (azsecrets.GetSecretResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return azsecrets.GetSecretResponse{}, f.fail
	}
	s, ok := f.secrets[name]
	if !ok {
		return azsecrets.GetSecretResponse{}, &azcore.ResponseError{StatusCode: http.StatusNotFound, ErrorCode: "SecretNotFound"}
	}
	return azsecrets.GetSecretResponse{Secret: s}, nil
}

func (f *fakeVault) SetSecret(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (azsecrets.SetSecretResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return azsecrets.SetSecretResponse{}, f.fail
	}
	f.secrets[name] = azsecrets.Secret{Value: p.Value, ContentType: p.ContentType, Tags: p.Tags}
	return azsecrets.SetSecretResponse{}, nil
}

func (f *fakeVault) DeleteSecret(_ context.Context, name string, _ *azsecrets.DeleteSecretOptions) (azsecrets.DeleteSecretResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.secrets[name]; !ok {
		return azsecrets.DeleteSecretResponse{}, &azcore.ResponseError{StatusCode: http.StatusNotFound}
	}
	delete(f.secrets, name)
	return azsecrets.DeleteSecretResponse{}, nil
}

func TestKeyVault(t *testing.T) {
	v := &fakeVault{secrets: map[string]azsecrets.Secret{}}
	k, err := NewKeyVault(v)
	require.NoError(t, err)
	contract(t, k)

	require.NoError(t, k.Put(context.Background(), "contoso", "prod", sample))
	s := v.secrets[SecretName("contoso", "prod")]
	assert.Equal(t, "contoso", *s.Tags["tenant"])
	assert.Equal(t, "application/json", *s.ContentType)

	// A secret whose tags name another workspace is refused, not handed out.
	v.secrets[SecretName("fabrikam", "prod")] = s
	_, err = k.Get(context.Background(), "fabrikam", "prod")
	assert.ErrorContains(t, err, "tagged for another workspace")

	v.fail = errors.New("vault unreachable")
	_, err = k.Get(context.Background(), "contoso", "prod")
	assert.ErrorContains(t, err, "vault unreachable")
	_, err = NewKeyVault(nil)
	assert.Error(t, err)
}

func TestSecretName(t *testing.T) {
	a, b := SecretName("a-b", "c"), SecretName("a", "b-c")
	assert.NotEqual(t, a, b)
	assert.Regexp(t, `^ws-[0-9a-f]{40}$`, a)
	long := strings.Repeat("x", 64)
	assert.LessOrEqual(t, len(SecretName(ids.TenantID(long), ids.WorkspaceID(long))), 127)
}

func TestNone(t *testing.T) {
	s, err := None{}.Get(context.Background(), "contoso", "prod")
	require.NoError(t, err)
	assert.True(t, s.Empty())
	assert.Error(t, None{}.Put(context.Background(), "contoso", "prod", sample))
}
