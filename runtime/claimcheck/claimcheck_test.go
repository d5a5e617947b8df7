package claimcheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/envelope"
)

const azuriteConn = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, "ConnectionString or ServiceURL"},
		{"both", Config{ConnectionString: azuriteConn, ServiceURL: "https://x"}, "exclusive"},
		{"url without credential", Config{ServiceURL: "https://x.blob.core.windows.net"}, "Credential"},
		{"negative max", Config{ConnectionString: azuriteConn, MaxBodyBytes: -1}, "MaxBodyBytes"},
		{"negative ttl", Config{ConnectionString: azuriteConn, URLTTL: -time.Second}, "URLTTL"},
		{"ttl too long", Config{ConnectionString: azuriteConn, URLTTL: 8 * 24 * time.Hour}, "7 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			_, err = New(context.Background(), tt.cfg)
			require.Error(t, err)
		})
	}
	s, err := New(context.Background(), Config{ConnectionString: azuriteConn})
	require.NoError(t, err)
	assert.Equal(t, DefaultContainer, s.Container())
	assert.Equal(t, int64(DefaultMaxBodyBytes), s.MaxBodyBytes())
	_, err = New(context.Background(), Config{ServiceURL: "https://x.blob.core.usgovcloudapi.net", Credential: &fake.TokenCredential{}})
	require.NoError(t, err)
}

func TestPutRefusesOversizeBeforeUpload(t *testing.T) {
	// The endpoint is unreachable: an upload attempt would fail differently.
	s, err := New(context.Background(), Config{ConnectionString: azuriteConn, MaxBodyBytes: 10})
	require.NoError(t, err)
	_, err = s.Put(context.Background(), make([]byte, 11), "")
	assert.ErrorIs(t, err, ErrBodyTooLarge)
	assert.ErrorContains(t, err, "11 bytes, the limit is 10")
}

func TestSignWithSharedKeyIsReadOnlyAndBlobScoped(t *testing.T) {
	s, err := New(context.Background(), Config{ConnectionString: azuriteConn, Container: "claims"})
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	c := claimFor([]byte("x"))
	require.NoError(t, s.Sign(context.Background(), c, 10*time.Minute))
	assert.True(t, strings.HasPrefix(c.URL, "http://127.0.0.1:1/devstoreaccount1/claims/20261123-abc?"), c.URL)
	assert.Contains(t, c.URL, "sp=r&")
	assert.Contains(t, c.URL, "sr=b&")
	assert.Equal(t, now.Add(10*time.Minute), c.URLExpiresAt)

	foreign := claimFor([]byte("x"))
	foreign.Container = "other"
	assert.ErrorIs(t, s.Sign(context.Background(), foreign, time.Minute), ErrForeignClaim)
	_, err = s.Fetch(context.Background(), foreign)
	assert.ErrorIs(t, err, ErrForeignClaim)
	assert.ErrorIs(t, s.Delete(context.Background(), foreign), ErrForeignClaim)
}

func claimFor(body []byte) *envelope.Claim {
	sum := sha256.Sum256(body)
	return &envelope.Claim{Container: "claims", Blob: "20261123-abc", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
}

func TestFetchURL(t *testing.T) {
	body := []byte("the large body")
	tests := []struct {
		name    string
		serve   func(w http.ResponseWriter)
		claim   func(c *envelope.Claim)
		max     int64
		wantErr error
		want    string
	}{
		{"ok", func(w http.ResponseWriter) { _, _ = w.Write(body) }, nil, 1 << 20, nil, ""},
		{"not found", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, nil, 1 << 20, ErrNotFound, ""},
		{"forbidden", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("AuthenticationFailed"))
		}, nil, 1 << 20, nil, "HTTP 403: AuthenticationFailed"},
		{"truncated", func(w http.ResponseWriter) { _, _ = w.Write(body[:5]) }, nil, 1 << 20, ErrCorrupt, ""},
		{"longer", func(w http.ResponseWriter) { _, _ = w.Write(append(body, '!')) }, nil, 1 << 20, ErrCorrupt, ""},
		{"swapped", func(w http.ResponseWriter) { _, _ = w.Write([]byte("the LARGE body")) }, nil, 1 << 20, ErrCorrupt, ""},
		{"claim over max", func(w http.ResponseWriter) { _, _ = w.Write(body) }, nil, 4, ErrBodyTooLarge, ""},
		{"no url", nil, func(c *envelope.Claim) { c.URL = "" }, 1 << 20, nil, "no URL"},
		{"invalid claim", nil, func(c *envelope.Claim) { c.SHA256 = "x" }, 1 << 20, nil, "sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.serve != nil {
					tt.serve(w)
				}
			}))
			defer srv.Close()
			c := claimFor(body)
			c.URL = srv.URL + "/claims/x?sig=y"
			if tt.claim != nil {
				tt.claim(c)
			}
			got, err := FetchURL(context.Background(), srv.Client(), c, tt.max)
			switch {
			case tt.wantErr != nil:
				assert.ErrorIs(t, err, tt.wantErr)
			case tt.want != "":
				assert.ErrorContains(t, err, tt.want)
			default:
				require.NoError(t, err)
				assert.Equal(t, body, got)
			}
		})
	}
}

func TestUploadURLIsWriteOnlyAndBlobScoped(t *testing.T) {
	s, err := New(context.Background(), Config{ConnectionString: azuriteConn, Container: "claims"})
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	u, exp, err := s.UploadURL(context.Background(), "contoso/prod/run-1/workdir-2.tar.gz", 5*time.Minute)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(u, "http://127.0.0.1:1/devstoreaccount1/claims/contoso%2Fprod%2Frun-1%2Fworkdir-2.tar.gz?"), u)
	assert.Contains(t, u, "sp=cw&", "create and write only: no read, list or delete")
	assert.Contains(t, u, "sr=b&", "one blob")
	assert.Equal(t, now.Add(5*time.Minute), exp)

	for _, bad := range []string{"", "/abs", "a/../b"} {
		_, _, err := s.UploadURL(context.Background(), bad, time.Minute)
		assert.Error(t, err, bad)
	}
}
