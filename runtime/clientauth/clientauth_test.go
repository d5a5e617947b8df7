package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/registry"
)

func TestKeyFileRoundTrip(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "connector.pem")
	require.NoError(t, WriteKeyFile(path, key))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	loaded, err := LoadKeyFile(path)
	require.NoError(t, err)
	assert.True(t, key.Equal(loaded))

	other, err := GenerateKey()
	require.NoError(t, err)
	err = WriteKeyFile(path, other)
	require.Error(t, err, "an existing key file is never overwritten")
	again, err := LoadKeyFile(path)
	require.NoError(t, err)
	assert.True(t, key.Equal(again))
}

func TestLoadKeyFileRejects(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p256, err := GenerateKey()
	require.NoError(t, err)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	require.NoError(t, err)

	tests := []struct {
		name string
		data []byte
		want string // empty: accepted
	}{
		{"sec1 accepted", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ""},
		{"rsa", pkcs8(rsaKey), "EC P-256"},
		{"p384", pkcs8(p384), "EC P-256"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), "PEM block is \"PUBLIC KEY\""},
		{"not pem", []byte("hello"), "no PEM block"},
		{"corrupt", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "cannot parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.pem")
			require.NoError(t, os.WriteFile(path, tt.data, 0o600))
			_, err := LoadKeyFile(path)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err = LoadKeyFile(filepath.Join(t.TempDir(), "missing.pem"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestPublicJWKRegisters(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	raw, err := PublicJWK(key, "")
	require.NoError(t, err)

	pub, err := registry.ParsePublicJWK(raw)
	require.NoError(t, err, "the JWK is accepted by the registry")
	assert.True(t, pub.Equal(&key.PublicKey))

	var fields map[string]string
	require.NoError(t, json.Unmarshal(raw, &fields))
	tp, err := Thumbprint(&key.PublicKey)
	require.NoError(t, err)
	assert.Equal(t, tp, fields["kid"], "kid defaults to the RFC 7638 thumbprint")
	assert.Len(t, tp, 43, "base64url of SHA-256")
	assert.Equal(t, "ES256", fields["alg"])
	assert.NotContains(t, fields, "d")

	named, err := PublicJWK(key, "agent-01-2026")
	require.NoError(t, err)
	assert.Contains(t, string(named), `"kid":"agent-01-2026"`)
}

func TestNewAssertion(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, err := NewAssertion(key, "contoso/agent-01", "https://idp/oauth2/token", now)
	require.NoError(t, err)
	b, err := NewAssertion(key, "contoso/agent-01", "https://idp/oauth2/token", now)
	require.NoError(t, err)

	var c jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(a, &c, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	require.NoError(t, err)
	assert.Equal(t, "ES256", tok.Header["alg"])
	assert.Equal(t, "contoso/agent-01", c.Issuer)
	assert.Equal(t, "contoso/agent-01", c.Subject)
	assert.Equal(t, jwt.ClaimStrings{"https://idp/oauth2/token"}, c.Audience)
	assert.True(t, now.Add(AssertionLifetime).Equal(c.ExpiresAt.Time))
	assert.NotEmpty(t, c.ID)

	var d jwt.RegisteredClaims
	_, _, err = jwt.NewParser().ParseUnverified(b, &d)
	require.NoError(t, err)
	assert.NotEqual(t, c.ID, d.ID, "every assertion has its own jti")
}

// tokenEndpoint is a fake idp token endpoint. respond decides each answer.
type tokenEndpoint struct {
	*httptest.Server
	calls   atomic.Int32
	respond func(n int32, w http.ResponseWriter, r *http.Request)
}

func newTokenEndpoint(t *testing.T, respond func(n int32, w http.ResponseWriter, r *http.Request)) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{respond: respond}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := e.calls.Add(1)
		e.respond(n, w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func issue(w http.ResponseWriter, token string, expiresIn int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, token, expiresIn)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newSource(t *testing.T, url string, clk *fakeClock) *TokenSource {
	t.Helper()
	key, err := GenerateKey()
	require.NoError(t, err)
	s, err := NewTokenSource(TokenSourceConfig{TokenURL: url, ClientID: "contoso/agent-01", Key: key, Now: clk.Now})
	require.NoError(t, err)
	return s
}

func TestTokenSourceCachesAndRefreshes(t *testing.T) {
	e := newTokenEndpoint(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if r.FormValue("grant_type") != "client_credentials" || r.FormValue("client_assertion_type") != AssertionType ||
			r.FormValue("client_id") != "contoso/agent-01" || r.FormValue("client_assertion") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		issue(w, fmt.Sprintf("token-%d", n), 100)
	})
	clk := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSource(t, e.URL, clk)
	ctx := context.Background()

	tok, err := s.TokenWithExpiry(ctx)
	require.NoError(t, err)
	assert.Equal(t, "token-1", tok.AccessToken)
	assert.Equal(t, clk.Now().Add(100*time.Second), tok.Expiry)

	clk.Add(79 * time.Second)
	got, err := s.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "token-1", got, "cached until 80% of its lifetime")

	clk.Add(time.Second)
	got, err = s.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "token-2", got, "refreshed at 80% of its lifetime")
	assert.Equal(t, int32(2), e.calls.Load())

	s.Invalidate()
	got, err = s.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "token-3", got)
}

func TestTokenSourceConcurrentCallersShareOneRequest(t *testing.T) {
	release := make(chan struct{})
	e := newTokenEndpoint(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		<-release
		issue(w, "shared", 600)
	})
	s := newSource(t, e.URL, &fakeClock{now: time.Now()})
	var wg sync.WaitGroup
	results := make([]string, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = s.Token(context.Background())
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, r := range results {
		assert.Equal(t, "shared", r)
	}
	assert.Equal(t, int32(1), e.calls.Load())
}

func TestTokenSourceKeepsValidTokenWhenRefreshFails(t *testing.T) {
	e := newTokenEndpoint(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			issue(w, "first", 100)
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	clk := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newSource(t, e.URL, clk)
	ctx := context.Background()
	_, err := s.Token(ctx)
	require.NoError(t, err)

	clk.Add(85 * time.Second)
	got, err := s.Token(ctx)
	require.NoError(t, err, "the old token still serves")
	assert.Equal(t, "first", got)
	calls := e.calls.Load()
	_, _ = s.Token(ctx)
	assert.Equal(t, calls, e.calls.Load(), "no retry storm after a failure")

	clk.Add(20 * time.Second) // past expiry
	_, err = s.Token(ctx)
	var oe *OAuthError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, http.StatusServiceUnavailable, oe.StatusCode)
	assert.True(t, oe.Temporary())
}

func TestTokenSourceErrors(t *testing.T) {
	tests := []struct {
		name    string
		respond func(w http.ResponseWriter)
		check   func(t *testing.T, oe *OAuthError)
	}{
		{"invalid_client", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client","error_description":"client authentication failed"}`))
		}, func(t *testing.T, oe *OAuthError) {
			assert.Equal(t, "invalid_client", oe.Code)
			assert.Equal(t, "client authentication failed", oe.Description)
			assert.False(t, oe.Temporary())
			assert.Contains(t, oe.Error(), "invalid_client")
		}},
		{"rate limited", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":"temporarily_unavailable"}`))
		}, func(t *testing.T, oe *OAuthError) {
			assert.Equal(t, 7*time.Second, oe.RetryAfter)
			assert.True(t, oe.Temporary())
		}},
		{"html error page", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>bad gateway</html>"))
		}, func(t *testing.T, oe *OAuthError) {
			assert.Empty(t, oe.Code)
			assert.Contains(t, oe.Description, "bad gateway")
		}},
		{"no token", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token_type":"Bearer","expires_in":60}`))
		}, func(t *testing.T, oe *OAuthError) { assert.Contains(t, oe.Description, "no access_token") }},
		{"wrong token type", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"x","token_type":"mac","expires_in":60}`))
		}, func(t *testing.T, oe *OAuthError) { assert.Contains(t, oe.Description, "token_type") }},
		{"no expiry", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"x","token_type":"Bearer"}`))
		}, func(t *testing.T, oe *OAuthError) { assert.Contains(t, oe.Description, "expires_in") }},
		{"not json", func(w http.ResponseWriter) {
			w.Write([]byte(`access_token=x`))
		}, func(t *testing.T, oe *OAuthError) { assert.Contains(t, oe.Description, "content type") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTokenEndpoint(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { tt.respond(w) })
			s := newSource(t, e.URL, &fakeClock{now: time.Now()})
			_, err := s.Token(context.Background())
			var oe *OAuthError
			require.ErrorAs(t, err, &oe)
			tt.check(t, oe)
		})
	}
}

func TestTokenSourceHonoursContext(t *testing.T) {
	e := newTokenEndpoint(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		r.ParseForm() // the server notices a closed connection only once the body is read
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	s := newSource(t, e.URL, &fakeClock{now: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Token(ctx)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err)
}

func TestTokenSourceConfigValidate(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	tests := []struct {
		name string
		cfg  TokenSourceConfig
		want string
	}{
		{"no url", TokenSourceConfig{ClientID: "t/c", Key: key}, "TokenURL"},
		{"relative url", TokenSourceConfig{TokenURL: "/oauth2/token", ClientID: "t/c", Key: key}, "TokenURL"},
		{"no client", TokenSourceConfig{TokenURL: "https://idp/oauth2/token", Key: key}, "ClientID"},
		{"no key", TokenSourceConfig{TokenURL: "https://idp/oauth2/token", ClientID: "t/c"}, "Key"},
		{"fraction", TokenSourceConfig{TokenURL: "https://idp/oauth2/token", ClientID: "t/c", Key: key, RefreshFraction: 1.5}, "RefreshFraction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTokenSource(tt.cfg)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
