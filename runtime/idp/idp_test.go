package idp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"github.com/botehq/platform/runtime/internal/golden"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/signingkeys"
)

const issuer = "https://idp.example.test"

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// auditRecords returns the audit records logged so far.
func (b *syncBuffer) auditRecords(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if rec["audit"] == true {
			out = append(out, rec)
		}
	}
	return out
}

type fixture struct {
	srv      *Server
	clk      *clock
	log      *syncBuffer
	keys     signingkeys.Store
	agent    *ecdsa.PrivateKey // contoso/agent-01
	disabled *ecdsa.PrivateKey // contoso/off
	stranger *ecdsa.PrivateKey // registered nowhere
}

const agentID = "contoso/agent-01"

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, log: &syncBuffer{}}
	var err error
	for _, k := range []**ecdsa.PrivateKey{&f.agent, &f.disabled, &f.stranger} {
		*k, err = clientauth.GenerateKey()
		require.NoError(t, err)
	}
	reg := writeRegistry(t, filepath.Join(t.TempDir(), "registry.json"), []registry.Connector{
		{Tenant: "contoso", ID: "agent-01", JWK: jwkOf(t, f.agent)},
		{Tenant: "contoso", ID: "off", JWK: jwkOf(t, f.disabled), Disabled: true},
	})
	logger := slog.New(slog.NewJSONHandler(f.log, nil))
	f.keys, err = signingkeys.OpenFileStore(signingkeys.FileConfig{
		Dir: t.TempDir(), TokenTTL: accesstoken.DefaultTTL, Now: f.clk.Now, Logger: logger,
	})
	require.NoError(t, err)
	clients, err := registry.Load(reg)
	require.NoError(t, err)
	cfg := Config{Issuer: issuer, Keys: f.keys, Clients: clients, Logger: logger, Now: f.clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	f.srv, err = New(cfg)
	require.NoError(t, err)
	return f
}

func jwkOf(t testing.TB, k *ecdsa.PrivateKey) json.RawMessage {
	t.Helper()
	out, err := clientauth.PublicJWK(k, "")
	require.NoError(t, err)
	return out
}

func writeRegistry(t testing.TB, path string, cs []registry.Connector) string {
	t.Helper()
	out, err := registry.Marshal(cs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

// assertion signs claims with method and key; defaults make a valid
// assertion for agent-01.
func (f *fixture) claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := f.clk.Now()
	c := jwt.MapClaims{
		"iss": agentID, "sub": agentID, "aud": issuer + TokenPath,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text(),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	out, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return out
}

func tokenForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientauth.AssertionType},
		"client_assertion":      {assertion},
	}
}

func (f *fixture) post(t *testing.T, body string, mod func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "192.0.2.7:4711"
	if mod != nil {
		mod(req)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func TestTokenIssued(t *testing.T) {
	f := newFixture(t, nil)
	assertion, err := clientauth.NewAssertion(f.agent, agentID, issuer+TokenPath, f.clk.Now())
	require.NoError(t, err)
	form := tokenForm(assertion)
	form.Set("client_id", agentID)
	rec := f.post(t, form.Encode(), nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))

	var resp tokenResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	assert.Equal(t, "Bearer", resp.TokenType)
	assert.InDelta(t, 600, resp.ExpiresIn, 1)

	claims := verifyWithJWKS(t, f, resp.AccessToken)
	assert.Equal(t, "contoso", claims.Tenant)
	assert.Equal(t, "agent-01", claims.Connector)
	assert.Equal(t, agentID, claims.Subject)
	assert.Equal(t, issuer, claims.Issuer)
	assert.Equal(t, jwt.ClaimStrings{"bote"}, claims.Audience)
	assert.NotEmpty(t, claims.ID)

	recs := f.log.auditRecords(t)
	require.Len(t, recs, 1)
	assert.Equal(t, "token issued", recs[0]["msg"])
	assert.Equal(t, agentID, recs[0]["client_id"])
	assert.Equal(t, "192.0.2.7:4711", recs[0]["remote_addr"])
	assert.Equal(t, claims.ID, recs[0]["jti"])
	assert.NotContains(t, f.log.String(), assertion, "the audit log never holds the assertion")
	assert.NotContains(t, f.log.String(), resp.AccessToken, "the audit log never holds the token")
}

// verifyWithJWKS checks token with an accesstoken.Verifier against the
// server's live JWKS endpoint.
func verifyWithJWKS(t *testing.T, f *fixture, token string) *accesstoken.Claims {
	t.Helper()
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := accesstoken.NewVerifier(ctx, accesstoken.VerifierConfig{
		Issuer: issuer, JWKSURL: ts.URL + JWKSPath, Now: f.clk.Now,
	})
	require.NoError(t, err)
	claims, err := v.Verify(ctx, token)
	require.NoError(t, err)
	return claims
}

func TestTokenRequestRefused(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	type want struct {
		status int
		code   string
		reason string
	}
	tests := []struct {
		name string
		// body builds the request body; mod adjusts the request.
		body func(t *testing.T, f *fixture) string
		mod  func(*http.Request)
		want want
	}{
		{"expired assertion", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) {
				c["iat"] = f.clk.Now().Add(-5 * time.Minute).Unix()
				c["exp"] = f.clk.Now().Add(-time.Minute).Unix()
			}))).Encode()
		}, nil, want{401, "invalid_client", "assertion_expired"}},
		{"exp too far ahead", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) {
				c["exp"] = f.clk.Now().Add(time.Hour).Unix()
			}))).Encode()
		}, nil, want{401, "invalid_client", "assertion_exp_too_far"}},
		{"no exp", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) { delete(c, "exp") }))).Encode()
		}, nil, want{401, "invalid_client", "assertion_no_exp"}},
		{"wrong aud", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) { c["aud"] = issuer }))).Encode()
		}, nil, want{401, "invalid_client", "assertion_aud"}},
		{"extra aud", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) {
				c["aud"] = []string{issuer + TokenPath, "https://other.example"}
			}))).Encode()
		}, nil, want{401, "invalid_client", "assertion_aud"}},
		{"alg none", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, f.claims(nil))).Encode()
		}, nil, want{401, "invalid_client", "assertion_alg"}},
		{"HS256 keyed with the registered public key", func(t *testing.T, f *fixture) string {
			der, err := x509.MarshalPKIXPublicKey(&f.agent.PublicKey)
			require.NoError(t, err)
			return tokenForm(sign(t, jwt.SigningMethodHS256, der, f.claims(nil))).Encode()
		}, nil, want{401, "invalid_client", "assertion_alg"}},
		{"HS256 keyed with the registered JWK", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodHS256, []byte(jwkOf(t, f.agent)), f.claims(nil))).Encode()
		}, nil, want{401, "invalid_client", "assertion_alg"}},
		{"RS256", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodRS256, rsaKey, f.claims(nil))).Encode()
		}, nil, want{401, "invalid_client", "assertion_alg"}},
		{"signed by another key", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.stranger, f.claims(nil))).Encode()
		}, nil, want{401, "invalid_client", "bad_signature"}},
		{"sub differs from iss", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) { c["sub"] = "contoso/other" }))).Encode()
		}, nil, want{401, "invalid_client", "assertion_sub"}},
		{"iss not a client id", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) {
				c["iss"], c["sub"] = "contoso", "contoso"
			}))).Encode()
		}, nil, want{401, "invalid_client", "assertion_iss"}},
		{"unknown client", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.stranger, f.claims(func(c jwt.MapClaims) {
				c["iss"], c["sub"] = "contoso/ghost", "contoso/ghost"
			}))).Encode()
		}, nil, want{401, "invalid_client", "unknown_client"}},
		{"disabled client", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.disabled, f.claims(func(c jwt.MapClaims) {
				c["iss"], c["sub"] = "contoso/off", "contoso/off"
			}))).Encode()
		}, nil, want{401, "invalid_client", "disabled_client"}},
		{"client_id mismatch", func(t *testing.T, f *fixture) string {
			form := tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil)))
			form.Set("client_id", "contoso/other")
			return form.Encode()
		}, nil, want{401, "invalid_client", "client_id_mismatch"}},
		{"no jti", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) { delete(c, "jti") }))).Encode()
		}, nil, want{401, "invalid_client", "assertion_jti"}},
		{"issued in the future", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(func(c jwt.MapClaims) {
				c["iat"] = f.clk.Now().Add(3 * time.Minute).Unix()
				c["exp"] = f.clk.Now().Add(4 * time.Minute).Unix()
			}))).Encode()
		}, nil, want{401, "invalid_client", "assertion_not_yet_valid"}},
		{"not a JWT", func(t *testing.T, f *fixture) string {
			return tokenForm("not.a.jwt").Encode()
		}, nil, want{401, "invalid_client", "malformed_assertion"}},
		{"wrong grant type", func(t *testing.T, f *fixture) string {
			form := tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil)))
			form.Set("grant_type", "password")
			return form.Encode()
		}, nil, want{400, "unsupported_grant_type", "unsupported_grant_type"}},
		{"no grant type", func(t *testing.T, f *fixture) string {
			form := tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil)))
			form.Del("grant_type")
			return form.Encode()
		}, nil, want{400, "invalid_request", "no_grant_type"}},
		{"wrong assertion type", func(t *testing.T, f *fixture) string {
			form := tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil)))
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return form.Encode()
		}, nil, want{401, "invalid_client", "assertion_type"}},
		{"no assertion", func(t *testing.T, f *fixture) string {
			form := tokenForm("")
			return form.Encode()
		}, nil, want{400, "invalid_request", "no_assertion"}},
		{"client secret instead", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil))).Encode()
		}, func(r *http.Request) { r.SetBasicAuth(agentID, "secret") }, want{401, "invalid_client", "other_auth_method"}},
		{"malformed form", func(t *testing.T, f *fixture) string {
			return "grant_type=client_credentials&client_assertion=%zz"
		}, nil, want{400, "invalid_request", "malformed_body"}},
		{"repeated parameter", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil))).Encode() + "&grant_type=client_credentials"
		}, nil, want{400, "invalid_request", "repeated_parameter"}},
		{"json body", func(t *testing.T, f *fixture) string {
			return `{"grant_type":"client_credentials"}`
		}, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, want{400, "invalid_request", "content_type"}},
		{"oversize body", func(t *testing.T, f *fixture) string {
			return tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil))).Encode() + "&pad=" + strings.Repeat("a", DefaultMaxBodyBytes)
		}, nil, want{413, "invalid_request", "body_too_large"}},
		{"GET", func(t *testing.T, f *fixture) string { return "" },
			func(r *http.Request) { r.Method = http.MethodGet }, want{405, "invalid_request", "method"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			body := tt.body(t, f)
			rec := f.post(t, body, tt.mod)
			assert.Equal(t, tt.want.status, rec.Code, rec.Body.String())
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			var eb errorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb), rec.Body.String())
			assert.Equal(t, tt.want.code, eb.Error)
			assert.NotEmpty(t, eb.Description)

			recs := f.log.auditRecords(t)
			require.Len(t, recs, 1, "every failure is audited")
			assert.Equal(t, "token request denied", recs[0]["msg"])
			assert.Equal(t, tt.want.reason, recs[0]["reason"])
			assert.Equal(t, "192.0.2.7:4711", recs[0]["remote_addr"])
			if form, err := url.ParseQuery(body); err == nil && len(form.Get("client_assertion")) > 20 {
				assert.NotContains(t, f.log.String(), form.Get("client_assertion"), "the audit log never holds the assertion")
			}
		})
	}
}

func TestUnknownAndBadSignatureLookAlike(t *testing.T) {
	// A caller must not learn from the response which client ids exist.
	f := newFixture(t, nil)
	unknown := f.post(t, tokenForm(sign(t, jwt.SigningMethodES256, f.stranger, f.claims(func(c jwt.MapClaims) {
		c["iss"], c["sub"] = "contoso/ghost", "contoso/ghost"
	}))).Encode(), nil)
	badSig := f.post(t, tokenForm(sign(t, jwt.SigningMethodES256, f.stranger, f.claims(nil))).Encode(), nil)
	assert.Equal(t, unknown.Code, badSig.Code)
	assert.JSONEq(t, unknown.Body.String(), badSig.Body.String())
}

func TestReplayedAssertionRefused(t *testing.T) {
	f := newFixture(t, nil)
	assertion, err := clientauth.NewAssertion(f.agent, agentID, issuer+TokenPath, f.clk.Now())
	require.NoError(t, err)
	first := f.post(t, tokenForm(assertion).Encode(), nil)
	require.Equal(t, http.StatusOK, first.Code, first.Body.String())

	f.clk.Add(30 * time.Second)
	second := f.post(t, tokenForm(assertion).Encode(), nil)
	assert.Equal(t, http.StatusUnauthorized, second.Code)
	var eb errorBody
	require.NoError(t, json.Unmarshal(second.Body.Bytes(), &eb))
	assert.Equal(t, "invalid_client", eb.Error)
	assert.Contains(t, eb.Description, "already used")

	// Once expired the assertion is refused as expired; the replay cache may
	// forget it.
	f.clk.Add(2 * time.Minute)
	third := f.post(t, tokenForm(assertion).Encode(), nil)
	assert.Equal(t, http.StatusUnauthorized, third.Code)
	recs := f.log.auditRecords(t)
	assert.Equal(t, "replay", recs[1]["reason"])
	assert.Equal(t, "assertion_expired", recs[2]["reason"])
	assert.Equal(t, 1.0, testutil.ToFloat64(f.srv.issued))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.srv.denied.WithLabelValues("replay")))

	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Contains(t, rec.Body.String(), `bote_idp_token_requests_denied_total{reason="assertion_expired"} 1`)
}

func TestClientRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ClientRate, c.ClientBurst = 0.1, 2 })
	get := func(key *ecdsa.PrivateKey) *httptest.ResponseRecorder {
		a := sign(t, jwt.SigningMethodES256, key, f.claims(nil))
		return f.post(t, tokenForm(a).Encode(), nil)
	}
	require.Equal(t, http.StatusOK, get(f.agent).Code)
	require.Equal(t, http.StatusOK, get(f.agent).Code)
	limited := get(f.agent)
	assert.Equal(t, http.StatusTooManyRequests, limited.Code)
	assert.Equal(t, "10", limited.Header().Get("Retry-After"))
	var eb errorBody
	require.NoError(t, json.Unmarshal(limited.Body.Bytes(), &eb))
	assert.Equal(t, "temporarily_unavailable", eb.Error)

	// Failed attempts in the client's name do not spend its bucket.
	for range 5 {
		assert.Equal(t, http.StatusUnauthorized, get(f.stranger).Code)
	}
	f.clk.Add(10 * time.Second)
	assert.Equal(t, http.StatusOK, get(f.agent).Code, "bucket refills")
	assert.Equal(t, "client_rate_limit", f.log.auditRecords(t)[2]["reason"])
}

func TestGlobalGuard(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.GlobalRate, c.GlobalBurst = 1, 3 })
	for range 3 {
		assert.Equal(t, http.StatusBadRequest, f.post(t, "garbage=%zz", nil).Code)
	}
	rec := f.post(t, "garbage", nil)
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Equal(t, "global_rate_limit", f.log.auditRecords(t)[3]["reason"])
}

func TestDiscoveryGolden(t *testing.T) {
	f := newFixture(t, nil)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, DiscoveryPath, nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, rec.Body.Bytes(), "", "  "))
	golden.Check(t, "openid-configuration.golden.json", pretty.Bytes())
}

func TestJWKSAndHealth(t *testing.T) {
	f := newFixture(t, nil)
	for path, want := range map[string]int{JWKSPath: 200, "/healthz": 200, "/readyz": 200, "/nope": 404} {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, JWKSPath, nil))
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &set))
	require.Len(t, set.Keys, 1)
	key, err := f.keys.SigningKey(context.Background())
	require.NoError(t, err)
	assert.Equal(t, key.ID, set.Keys[0].Kid)
	assert.Equal(t, "ES256", set.Keys[0].Alg)
	assert.Empty(t, set.Keys[0].D)
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{Issuer: issuer, Keys: fakeKeys{}, Clients: &registry.Registry{}}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }, "Issuer"},
		{"relative issuer", func(c *Config) { c.Issuer = "idp.example" }, "Issuer"},
		{"trailing slash", func(c *Config) { c.Issuer = issuer + "/" }, "Issuer"},
		{"ttl too long", func(c *Config) { c.TokenTTL = 2 * time.Hour }, "TokenTTL"},
		{"no keys", func(c *Config) { c.Keys = nil }, "Keys"},
		{"no clients", func(c *Config) { c.Clients = nil }, "Clients"},
		{"leeway", func(c *Config) { c.Leeway = time.Hour }, "Leeway"},
		{"negative rate", func(c *Config) { c.ClientRate = -1 }, "ClientRate"},
		{"negative body", func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.NoError(t, base().Validate())
}

// fakeKeys is a Store that is never asked for anything.
type fakeKeys struct{}

func (fakeKeys) SigningKey(context.Context) (signingkeys.Key, error)         { panic("unused") }
func (fakeKeys) PublicKeys(context.Context) ([]signingkeys.PublicKey, error) { panic("unused") }

func TestTokensVerifyAcrossKeyRotation(t *testing.T) {
	f := newFixture(t, nil) // keys rotate daily, next key published 15m ahead
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := accesstoken.NewVerifier(ctx, accesstoken.VerifierConfig{Issuer: issuer, JWKSURL: ts.URL + JWKSPath, Now: f.clk.Now})
	require.NoError(t, err)
	token := func() string {
		rec := f.post(t, tokenForm(sign(t, jwt.SigningMethodES256, f.agent, f.claims(nil))).Encode(), nil)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var resp tokenResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
		return resp.AccessToken
	}
	jwksKids := func() []string {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, JWKSPath, nil))
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &set))
		var kids []string
		for _, k := range set.Keys {
			kids = append(kids, k.Kid)
		}
		return kids
	}

	f.clk.Add(24*time.Hour - 15*time.Minute)
	require.Len(t, jwksKids(), 2, "next key published ahead")
	f.clk.Add(14 * time.Minute)
	old := token()
	f.clk.Add(time.Minute)
	rotated := token()
	oldKid, newKid := kidOf(t, old), kidOf(t, rotated)
	require.NotEqual(t, oldKid, newKid, "rotation happened")

	f.clk.Add(5 * time.Minute)
	for _, tok := range []string{old, rotated} {
		_, err := v.Verify(ctx, tok)
		assert.NoError(t, err, "tokens of both keys verify during the overlap")
	}
	assert.ElementsMatch(t, []string{oldKid, newKid}, jwksKids())

	f.clk.Add(6 * time.Minute) // old key retired 11m ago: TokenTTL + grace
	assert.Equal(t, []string{newKid}, jwksKids(), "old key dropped once its tokens have expired")
	_, err = v.Verify(ctx, old)
	assert.ErrorIs(t, err, accesstoken.ErrExpired)
	_, err = v.Verify(ctx, token())
	assert.NoError(t, err)
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	require.NoError(t, err)
	return tok.Header["kid"].(string)
}

// memReplay is a ReplayStore shared by two servers, as the table is shared
// by replicas.
type memReplay struct {
	mu   sync.Mutex
	used map[string]time.Time
	err  error
}

func (m *memReplay) Use(_ context.Context, key string, forgetAfter time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if _, ok := m.used[key]; ok {
		return false, nil
	}
	m.used[key] = forgetAfter
	return true, nil
}

// An assertion accepted by one replica is refused by another that shares
// the replay store; a store that cannot answer fails closed.
func TestReplayedAssertionRefusedByAnotherReplica(t *testing.T) {
	shared := &memReplay{used: map[string]time.Time{}}
	f := newFixture(t, func(c *Config) { c.Replay = shared })
	cfg := f.srv.cfg
	cfg.Metrics = prometheus.NewRegistry()
	other, err := New(cfg)
	require.NoError(t, err)

	assertion, err := clientauth.NewAssertion(f.agent, agentID, issuer+TokenPath, f.clk.Now())
	require.NoError(t, err)
	first := f.post(t, tokenForm(assertion).Encode(), nil)
	require.Equal(t, http.StatusOK, first.Code, first.Body.String())

	req := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(tokenForm(assertion).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	second := httptest.NewRecorder()
	other.ServeHTTP(second, req)
	assert.Equal(t, http.StatusUnauthorized, second.Code, second.Body.String())
	assert.Contains(t, second.Body.String(), "already used")

	shared.err = errors.New("table unreachable")
	fresh, err := clientauth.NewAssertion(f.agent, agentID, issuer+TokenPath, f.clk.Now())
	require.NoError(t, err)
	third := f.post(t, tokenForm(fresh).Encode(), nil)
	assert.Equal(t, http.StatusServiceUnavailable, third.Code)
	assert.Contains(t, third.Body.String(), "temporarily_unavailable")
	assert.Equal(t, 1.0, testutil.ToFloat64(f.srv.denied.WithLabelValues("replay_store")))
}
