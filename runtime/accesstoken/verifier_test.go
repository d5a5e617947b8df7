package accesstoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testIssuer = "https://idp.example.test"

// jwksServer serves a mutable key set and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []jose.JSONWebKey
	hits atomic.Int32
}

func newJWKSServer(t testing.TB) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(kid string, pub crypto.PublicKey, alg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

type verifierFixture struct {
	jwks *jwksServer
	key  *ecdsa.PrivateKey
	now  time.Time
	v    *Verifier
}

func newVerifierFixture(t testing.TB, mod func(*VerifierConfig)) *verifierFixture {
	t.Helper()
	f := &verifierFixture{jwks: newJWKSServer(t), key: ecKey(t), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	f.jwks.publish("k1", &f.key.PublicKey, Algorithm)
	cfg := VerifierConfig{Issuer: testIssuer, JWKSURL: f.jwks.URL, Now: func() time.Time { return f.now }}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var err error
	f.v, err = NewVerifier(ctx, cfg)
	require.NoError(t, err)
	return f
}

// claims returns valid claims for contoso/agent-01, adjusted by mod.
func (f *verifierFixture) claims(t testing.TB, mod func(*Claims)) *Claims {
	t.Helper()
	c, err := NewClaims(testIssuer, DefaultAudience, "contoso", "agent-01", "", f.now.Add(-time.Minute), DefaultTTL)
	require.NoError(t, err)
	if mod != nil {
		mod(c)
	}
	return c
}

func (f *verifierFixture) sign(t testing.TB, kid string, key crypto.Signer, c jwt.Claims) string {
	t.Helper()
	tok, err := Sign(key, kid, c)
	require.NoError(t, err)
	return tok
}

func TestVerifyAccepts(t *testing.T) {
	f := newVerifierFixture(t, nil)
	got, err := f.v.Verify(context.Background(), f.sign(t, "k1", f.key, f.claims(t, nil)))
	require.NoError(t, err)
	assert.Equal(t, "contoso", got.Tenant)
	assert.Equal(t, "agent-01", got.Connector)
	assert.Equal(t, "contoso/agent-01", got.ClientID())
}

func TestVerifyRejects(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	stranger := ecKey(t)

	tests := []struct {
		name  string
		token func(t *testing.T, f *verifierFixture) string
		want  error
	}{
		{"wrong issuer", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.Issuer = "https://evil.example" }))
		}, ErrInvalid},
		{"wrong audience", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }))
		}, ErrInvalid},
		{"expired", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(f.now.Add(-time.Minute)) }))
		}, ErrExpired},
		{"no exp", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.ExpiresAt = nil }))
		}, ErrInvalid},
		{"not yet valid", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.NotBefore = jwt.NewNumericDate(f.now.Add(5 * time.Minute)) }))
		}, ErrInvalid},
		{"alg none", func(t *testing.T, f *verifierFixture) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims(t, nil))
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			require.NoError(t, err)
			return s
		}, ErrInvalid},
		{"HS256 keyed with the public key", func(t *testing.T, f *verifierFixture) string {
			der, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
			require.NoError(t, err)
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims(t, nil))
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(der)
			require.NoError(t, err)
			return s
		}, ErrInvalid},
		{"RS256 with a published RSA key", func(t *testing.T, f *verifierFixture) string {
			f.jwks.publish("rsa", &rsaKey.PublicKey, "RS256")
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, f.claims(t, nil))
			tok.Header["kid"] = "rsa"
			s, err := tok.SignedString(rsaKey)
			require.NoError(t, err)
			return s
		}, ErrInvalid},
		{"no kid", func(t *testing.T, f *verifierFixture) string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodES256, f.claims(t, nil)).SignedString(f.key)
			require.NoError(t, err)
			return s
		}, ErrInvalid},
		{"signed by another key under a published kid", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", stranger, f.claims(t, nil))
		}, ErrInvalid},
		{"signed by an unknown key", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "nobody", stranger, f.claims(t, nil))
		}, ErrInvalid},
		{"no tenant", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.Tenant = "" }))
		}, ErrInvalid},
		{"sub disagrees with claims", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.Tenant = "fabrikam" }))
		}, ErrInvalid},
		{"invalid tenant id", func(t *testing.T, f *verifierFixture) string {
			return f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.Tenant, c.Subject = "a/b", "a/b/agent-01" }))
		}, ErrInvalid},
		{"garbage", func(t *testing.T, f *verifierFixture) string { return "a.b.c" }, ErrInvalid},
		{"oversize", func(t *testing.T, f *verifierFixture) string { return string(make([]byte, MaxTokenBytes+1)) }, ErrInvalid},
		{"empty", func(t *testing.T, f *verifierFixture) string { return "" }, ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newVerifierFixture(t, nil)
			_, err := f.v.Verify(context.Background(), tt.token(t, f))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestUnknownKeyRefreshesOnceThenWaits(t *testing.T) {
	f := newVerifierFixture(t, nil)
	ctx := context.Background()
	_, err := f.v.Verify(ctx, f.sign(t, "k1", f.key, f.claims(t, nil)))
	require.NoError(t, err)
	base := f.jwks.hits.Load()

	// A key published after the cache was filled is found by one refresh.
	rotated := ecKey(t)
	f.jwks.publish("k2", &rotated.PublicKey, Algorithm)
	_, err = f.v.Verify(ctx, f.sign(t, "k2", rotated, f.claims(t, nil)))
	require.NoError(t, err)
	assert.Equal(t, base+1, f.jwks.hits.Load(), "one refresh for the new kid")

	// Garbage kids within the limit's period cost nothing and wait for nothing.
	stranger := ecKey(t)
	start := time.Now()
	for range 20 {
		_, err = f.v.Verify(ctx, f.sign(t, rand.Text(), stranger, f.claims(t, nil)))
		assert.ErrorIs(t, err, ErrInvalid)
	}
	assert.Equal(t, base+1, f.jwks.hits.Load(), "no further refresh within the limit")
	assert.Less(t, time.Since(start), 2*time.Second, "rejected at once, not queued behind the limiter")

	_, err = f.v.Verify(ctx, f.sign(t, "k1", f.key, f.claims(t, nil)))
	assert.NoError(t, err, "known keys keep working")
}

func TestIdpDownAtStart(t *testing.T) {
	jwks := newJWKSServer(t)
	key := ecKey(t)
	jwks.Close() // nothing listens
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewVerifier(ctx, VerifierConfig{Issuer: testIssuer, JWKSURL: jwks.URL,
		HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err, "services may start before the idp")
	c, err := NewClaims(testIssuer, DefaultAudience, "t", "c", "", time.Now(), time.Minute)
	require.NoError(t, err)
	tok, err := Sign(key, "k1", c)
	require.NoError(t, err)
	_, err = v.Verify(ctx, tok)
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestSubjectOnly(t *testing.T) {
	f := newVerifierFixture(t, func(c *VerifierConfig) { c.SubjectOnly = true })
	got, err := f.v.Verify(context.Background(), f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) {
		c.Tenant, c.Connector, c.Subject = "", "", "operator:alice"
	})))
	require.NoError(t, err)
	assert.Equal(t, "operator:alice", got.Subject)

	_, err = f.v.Verify(context.Background(), f.sign(t, "k1", f.key, f.claims(t, func(c *Claims) { c.Tenant = "fabrikam" })))
	assert.ErrorIs(t, err, ErrInvalid, "identity claims that are present must agree with sub")
}

// opaqueSigner hides the concrete key type, as a remote (Key Vault) key does.
type opaqueSigner struct{ k *ecdsa.PrivateKey }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, digest, opts)
}

func TestSignWithOpaqueSigner(t *testing.T) {
	f := newVerifierFixture(t, nil)
	for range 20 { // r and s of varying length must be padded
		_, err := f.v.Verify(context.Background(), f.sign(t, "k1", opaqueSigner{f.key}, f.claims(t, nil)))
		require.NoError(t, err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, err = Sign(rsaKey, "k1", jwt.RegisteredClaims{})
	assert.ErrorContains(t, err, "not an EC P-256 key")
	_, err = Sign(f.key, "", jwt.RegisteredClaims{})
	assert.ErrorContains(t, err, "empty key id")
}

func TestFromRequest(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
		err     error
	}{
		{"bearer", []string{"Bearer abc"}, "abc", nil},
		{"scheme case-insensitive", []string{"bearer abc"}, "abc", nil},
		{"none", nil, "", ErrMissing},
		{"empty bearer", []string{"Bearer "}, "", ErrInvalid},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", ErrInvalid},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := FromRequest(r)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestVerifierConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  VerifierConfig
		want string
	}{
		{"no issuer", VerifierConfig{JWKSURL: "https://idp/jwks"}, "Issuer"},
		{"no jwks", VerifierConfig{Issuer: testIssuer}, "JWKSURL"},
		{"relative jwks", VerifierConfig{Issuer: testIssuer, JWKSURL: "/jwks"}, "JWKSURL"},
		{"leeway", VerifierConfig{Issuer: testIssuer, JWKSURL: "https://idp/jwks", Leeway: time.Hour}, "Leeway"},
		{"refresh", VerifierConfig{Issuer: testIssuer, JWKSURL: "https://idp/jwks", RefreshInterval: -1}, "RefreshInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorContains(t, tt.cfg.Validate(), tt.want)
		})
	}
}
