package signingkeys

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeVault keeps secrets with versions, like Key Vault: SetSecret adds a
// version, GetSecret without a version returns the latest, a missing
// secret is a 404 ResponseError.
type fakeVault struct {
	mu       sync.Mutex
	versions map[string][]azsecrets.SetSecretParameters
	fail     error
}

func newFakeVault() *fakeVault {
	return &fakeVault{versions: map[string][]azsecrets.SetSecretParameters{}}
}

func (v *fakeVault) GetSecret(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (azsecrets.GetSecretResponse, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail != nil {
		return azsecrets.GetSecretResponse{}, v.fail
	}
	vs := v.versions[name]
	if len(vs) == 0 || version != "" {
		return azsecrets.GetSecretResponse{}, &azcore.ResponseError{StatusCode: http.StatusNotFound, ErrorCode: "SecretNotFound"}
	}
	last := vs[len(vs)-1]
	return azsecrets.GetSecretResponse{Secret: azsecrets.Secret{Value: last.Value, Tags: last.Tags}}, nil
}

func (v *fakeVault) SetSecret(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (azsecrets.SetSecretResponse, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail != nil {
		return azsecrets.SetSecretResponse{}, v.fail
	}
	v.versions[name] = append(v.versions[name], p)
	return azsecrets.SetSecretResponse{}, nil
}

func (v *fakeVault) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, vs := range v.versions {
		n += len(vs)
	}
	return n
}

func kvStore(t *testing.T, v VaultClient, c *clock) *KeyVaultStore {
	t.Helper()
	s, err := NewKeyVaultStore(KeyVaultConfig{
		Client: v, RotateEvery: time.Hour, PublishAhead: 10 * time.Minute, TokenTTL: 15 * time.Minute,
		Grace: time.Minute, Refresh: time.Minute, Now: c.Now,
	})
	require.NoError(t, err)
	return s
}

func ids(keys []PublicKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

// Replicas share the keys, a restart keeps them, and rotation overlaps:
// the next key is published ahead of use, the retired one until its tokens
// expired.
func TestKeyVaultStoreSharedAcrossReplicasAndRestarts(t *testing.T) {
	ctx := context.Background()
	vault := newFakeVault()
	c := &clock{now: time.Date(2026, 12, 6, 10, 5, 0, 0, time.UTC)}
	a, b := kvStore(t, vault, c), kvStore(t, vault, c)

	ka, err := a.SigningKey(ctx)
	require.NoError(t, err)
	kb, err := b.SigningKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, ka.ID, kb.ID, "replicas sign with the same key")
	assert.Equal(t, 1, vault.count(), "one key created")

	restarted := kvStore(t, vault, c)
	kr, err := restarted.SigningKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, ka.ID, kr.ID, "a restart keeps the key")

	// 10:55: the next key is published (10 minutes ahead), not used.
	c.Add(50 * time.Minute)
	pub, err := b.PublicKeys(ctx)
	require.NoError(t, err)
	require.Len(t, pub, 2)
	k, err := a.SigningKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, ka.ID, k.ID, "still signing with the current key")
	next := ids(pub)
	next = append(next[:0:0], next...)

	// 11:05: the next key signs; the retired one stays published.
	c.Add(10 * time.Minute)
	k2, err := a.SigningKey(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, ka.ID, k2.ID)
	assert.Contains(t, next, k2.ID, "the key that signs was published ahead")
	pub, err = restarted.PublicKeys(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{ka.ID, k2.ID}, ids(pub))

	// 11:17: tokens of the retired key (15 min + 1 min grace) have expired.
	c.Add(12 * time.Minute)
	pub, err = a.PublicKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{k2.ID}, ids(pub))
}

// Two replicas that create the same key at once write two versions; both
// converge on the latest before it signs.
func TestKeyVaultStoreConvergesAfterACreateRace(t *testing.T) {
	ctx := context.Background()
	vault := newFakeVault()
	c := &clock{now: time.Date(2026, 12, 6, 10, 52, 0, 0, time.UTC)}
	a, b := kvStore(t, vault, c), kvStore(t, vault, c)
	next := a.slot(c.Now()) + 1

	// a creates the next key (published 10 minutes ahead); b, racing,
	// writes its own version right after a read its back.
	_, err := a.PublicKeys(ctx)
	require.NoError(t, err)
	require.NoError(t, b.create(ctx, b.secretName(next), next))
	require.Len(t, vault.versions[a.secretName(next)], 2)

	// 11:00: after a refresh both sign with the latest version.
	c.Add(8 * time.Minute)
	ka, err := a.SigningKey(ctx)
	require.NoError(t, err)
	kb, err := b.SigningKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, ka.ID, kb.ID)
	pub, err := a.PublicKeys(ctx)
	require.NoError(t, err)
	assert.Contains(t, ids(pub), ka.ID)
}

func TestKeyVaultStoreErrors(t *testing.T) {
	ctx := context.Background()
	vault := newFakeVault()
	c := &clock{now: time.Date(2026, 12, 6, 10, 5, 0, 0, time.UTC)}
	s := kvStore(t, vault, c)
	vault.fail = errors.New("403 Forbidden")
	_, err := s.SigningKey(ctx)
	assert.ErrorContains(t, err, "cannot read signing key secret idp-signing-")
	_, err = s.PublicKeys(ctx)
	assert.ErrorContains(t, err, "403 Forbidden")

	vault.fail = nil
	vault.versions[s.secretName(s.slot(c.Now()))] = []azsecrets.SetSecretParameters{{Value: ptr("not a key")}}
	_, err = s.SigningKey(ctx)
	assert.ErrorContains(t, err, "no PEM block")

	for _, cfg := range []KeyVaultConfig{
		{TokenTTL: time.Minute},
		{Client: vault},
		{Client: vault, TokenTTL: time.Minute, RotateEvery: time.Hour, PublishAhead: time.Minute, Refresh: 2 * time.Minute},
	} {
		_, err := NewKeyVaultStore(cfg)
		assert.Error(t, err)
	}
}

func ptr[T any](v T) *T { return &v }
