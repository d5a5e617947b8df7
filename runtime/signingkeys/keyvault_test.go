package signingkeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
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
	latency  time.Duration // of every call, to let callers overlap
}

func newFakeVault() *fakeVault {
	return &fakeVault{versions: map[string][]azsecrets.SetSecretParameters{}}
}

func (v *fakeVault) GetSecret(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (azsecrets.GetSecretResponse, error) {
	time.Sleep(v.latency)
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
	time.Sleep(v.latency)
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

// keyVaultServer implements the two Key Vault REST calls KeyVaultStore
// makes (GET and PUT /secrets/{name}), with Key Vault's bearer challenge,
// so the store is tested through the real azsecrets client.
type keyVaultServer struct {
	mu      sync.Mutex
	secrets map[string]map[string]any // name -> latest secret bundle
	puts    int
	deny    bool
}

func (s *keyVaultServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		// azsecrets first sends the request without a token and learns
		// the tenant and resource from the challenge.
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Authorization") != "Bearer fake-token" || r.URL.Query().Get("api-version") == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if s.deny {
		writeJSON(http.StatusForbidden, map[string]any{"error": map[string]any{"code": "Forbidden", "message": "no role"}})
		return
	}
	name := strings.Split(strings.TrimPrefix(r.URL.Path, "/secrets/"), "/")[0]
	switch r.Method {
	case http.MethodGet:
		bundle, ok := s.secrets[name]
		if !ok {
			writeJSON(http.StatusNotFound, map[string]any{"error": map[string]any{"code": "SecretNotFound", "message": "A secret with (name/id) " + name + " was not found in this key vault."}})
			return
		}
		writeJSON(http.StatusOK, bundle)
	case http.MethodPut:
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.puts++
		body["id"] = fmt.Sprintf("https://%s/secrets/%s/%032d", r.Host, name, s.puts)
		s.secrets[name] = body
		writeJSON(http.StatusOK, body)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "fake-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestKeyVaultStoreThroughTheAzureClient(t *testing.T) {
	ctx := context.Background()
	kv := &keyVaultServer{secrets: map[string]map[string]any{}}
	srv := httptest.NewTLSServer(kv)
	t.Cleanup(srv.Close)
	client, err := azsecrets.NewClient(srv.URL, fakeCredential{}, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: srv.Client(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true, // the fake vault is 127.0.0.1, not *.vault.azure.net
	})
	require.NoError(t, err)

	c := &clock{now: time.Date(2026, 12, 6, 10, 5, 0, 0, time.UTC)}
	a := kvStore(t, client, c)
	k, err := a.SigningKey(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, kv.puts, "a missing key (404) is created")
	name := a.secretName(a.slot(c.Now()))
	assert.Equal(t, "application/x-pem-file", kv.secrets[name]["contentType"])
	assert.Contains(t, kv.secrets[name]["value"], "-----BEGIN PRIVATE KEY-----")

	restarted := kvStore(t, client, c)
	k2, err := restarted.SigningKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, k.ID, k2.ID)
	assert.Equal(t, 1, kv.puts)

	kv.mu.Lock()
	kv.deny = true
	kv.mu.Unlock()
	_, err = kvStore(t, client, c).SigningKey(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")
}

// Concurrent first requests in one process create one key, not one each.
func TestKeyVaultStoreCreatesOnceUnderConcurrency(t *testing.T) {
	vault := newFakeVault()
	vault.latency = 5 * time.Millisecond
	c := &clock{now: time.Date(2026, 12, 6, 10, 5, 0, 0, time.UTC)}
	s := kvStore(t, vault, c)
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := s.SigningKey(context.Background())
			if assert.NoError(t, err) {
				ids[i] = k.ID
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, vault.count())
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
}
