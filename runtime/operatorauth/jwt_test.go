package operatorauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeIssuer is an OIDC issuer serving discovery and a JWKS with one RSA
// and one EC key.
type fakeIssuer struct {
	srv    *httptest.Server
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	fi := &fakeIssuer{rsaKey: rk, ecKey: ek}
	b64 := base64.RawURLEncoding.EncodeToString
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": fi.srv.URL, "jwks_uri": fi.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "kid": "rsa1", "use": "sig", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
			{"kty": "EC", "kid": "ec1", "use": "sig", "crv": "P-256", "x": b64(ek.X.FillBytes(make([]byte, 32))), "y": b64(ek.Y.FillBytes(make([]byte, 32)))},
		}})
	})
	fi.srv = httptest.NewServer(mux)
	t.Cleanup(fi.srv.Close)
	return fi
}

type tokenOpts struct {
	method jwt.SigningMethod
	kid    string
	key    any
	claims jwt.MapClaims
}

func (fi *fakeIssuer) claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": fi.srv.URL, "aud": "api://ops", "sub": "s-123", "oid": "o-456",
		"preferred_username": "alice@contoso.example", "roles": []string{"Ops.Operator"},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, o tokenOpts) string {
	t.Helper()
	tok := jwt.NewWithClaims(o.method, o.claims)
	if o.kid != "" {
		tok.Header["kid"] = o.kid
	}
	s, err := tok.SignedString(o.key)
	require.NoError(t, err)
	return s
}

func TestJWTValidator(t *testing.T) {
	fi := newFakeIssuer(t)
	ctx := context.Background()
	now := time.Now()
	v, err := NewJWTValidator(ctx, JWTConfig{Issuer: fi.srv.URL, Audience: "api://ops", RequiredRole: "Ops.Operator"})
	require.NoError(t, err)
	assert.Equal(t, fi.srv.URL+"/keys", v.JWKSURL(), "discovered from the issuer")

	with := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := fi.claims(now)
		mut(c)
		return c
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&fi.rsaKey.PublicKey)
	require.NoError(t, err)
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	tests := []struct {
		name    string
		token   string
		wantErr error
		want    string
	}{
		{"rs256", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, fi.claims(now)}), nil, ""},
		{"es256", sign(t, tokenOpts{jwt.SigningMethodES256, "ec1", fi.ecKey, fi.claims(now)}), nil, ""},
		{"role in scp", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { delete(c, "roles"); c["scp"] = "read Ops.Operator" })}), nil, ""},
		{"expired", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })}), ErrUnauthenticated, "expired"},
		{"no exp", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { delete(c, "exp") })}), ErrUnauthenticated, "exp"},
		{"wrong issuer", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })}), ErrUnauthenticated, "issuer"},
		{"wrong audience", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { c["aud"] = "api://other" })}), ErrUnauthenticated, "audience"},
		{"no sub", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { delete(c, "sub") })}), ErrUnauthenticated, "no sub"},
		{"missing role", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", fi.rsaKey, with(func(c jwt.MapClaims) { c["roles"] = []string{"Reader"} })}), ErrForbidden, "Ops.Operator"},
		{"signed by another key", sign(t, tokenOpts{jwt.SigningMethodRS256, "rsa1", otherRSA, fi.claims(now)}), ErrUnauthenticated, "verification"},
		{"unknown kid", sign(t, tokenOpts{jwt.SigningMethodRS256, "nope", fi.rsaKey, fi.claims(now)}), ErrUnauthenticated, ""},
		{"alg none", sign(t, tokenOpts{jwt.SigningMethodNone, "rsa1", jwt.UnsafeAllowNoneSignatureType, fi.claims(now)}), ErrUnauthenticated, "signing method"},
		{"hs256 with the public key as secret", sign(t, tokenOpts{jwt.SigningMethodHS256, "rsa1", pubDER, fi.claims(now)}), ErrUnauthenticated, "signing method"},
		{"ps256 not configured", sign(t, tokenOpts{jwt.SigningMethodPS256, "rsa1", fi.rsaKey, fi.claims(now)}), ErrUnauthenticated, "signing method"},
		{"garbage", "a.b.c", ErrUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(ctx, tt.token)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.ErrorContains(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, Principal{Kind: KindOAuth2, ID: "o-456", Name: "alice@contoso.example"}, p)
		})
	}
}

func TestJWTConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{"no issuer", JWTConfig{Audience: "a"}, "Issuer"},
		{"relative issuer", JWTConfig{Issuer: "idp.example", Audience: "a"}, "Issuer"},
		{"no audience", JWTConfig{Issuer: "https://idp.example"}, "Audience"},
		{"bad jwks", JWTConfig{Issuer: "https://idp.example", Audience: "a", JWKSURL: "ftp://x"}, "JWKSURL"},
		{"hmac", JWTConfig{Issuer: "https://idp.example", Audience: "a", Algorithms: []string{"HS256"}}, "Algorithms"},
		{"none", JWTConfig{Issuer: "https://idp.example", Audience: "a", Algorithms: []string{"none"}}, "Algorithms"},
		{"leeway", JWTConfig{Issuer: "https://idp.example", Audience: "a", Leeway: time.Hour}, "Leeway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorContains(t, tt.cfg.Validate(), tt.want)
		})
	}
	assert.NoError(t, JWTConfig{Issuer: "https://idp.example", Audience: "a", Algorithms: []string{"ES384"}}.Validate())
}

func TestDiscoveryFailureIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := NewJWTValidator(context.Background(), JWTConfig{Issuer: srv.URL, Audience: "a"})
	assert.ErrorContains(t, err, "cannot discover JWKS")
}

func TestAuthenticatorBothKinds(t *testing.T) {
	fi := newFakeIssuer(t)
	f := &KeysFile{Version: KeysFileVersion}
	key, err := f.AddKey("ci", "", Grants{}, testNow)
	require.NoError(t, err)
	path := t.TempDir() + "/keys.json"
	require.NoError(t, f.Save(path))
	a, err := New(context.Background(), Config{KeysFile: path, OAuth2: &JWTConfig{Issuer: fi.srv.URL, Audience: "api://ops", JWKSURL: fi.srv.URL + "/keys"}})
	require.NoError(t, err)

	auth := func(cred string) (Principal, error) {
		r := httptest.NewRequest("GET", "/v1/agents", nil)
		r.Header.Set("Authorization", "Bearer "+cred)
		return a.Authenticate(r)
	}
	p, err := auth(key)
	require.NoError(t, err)
	assert.Equal(t, Principal{Kind: KindAPIKey, ID: "ci", Name: "ci"}, p)
	assert.Equal(t, "api-key:ci", p.String())

	p, err = auth(sign(t, tokenOpts{jwt.SigningMethodES256, "ec1", fi.ecKey, fi.claims(time.Now())}))
	require.NoError(t, err)
	assert.Equal(t, KindOAuth2, p.Kind)

	_, err = auth("not-a-key")
	assert.ErrorIs(t, err, ErrUnauthenticated)

	keysOnly, err := New(context.Background(), Config{KeysFile: path})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer a.b.c")
	_, err = keysOnly.Authenticate(r)
	assert.ErrorContains(t, err, "OAuth2 tokens are not enabled")
}
