package images

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExchangeTradesTheEntraTokenForARefreshToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		if r.URL.Path != "/oauth2/exchange" || r.Form.Get("grant_type") != "access_token" ||
			r.Form.Get("service") != "botedevacr.azurecr.io" || r.Form.Get("access_token") != "entra-token" {
			http.Error(w, "bad exchange", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"refresh_token":"acr-refresh"}`))
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	got, err := exchange(ctx, srv.Client(), srv.URL, "botedevacr.azurecr.io", "entra-token")
	require.NoError(t, err)
	assert.Equal(t, "acr-refresh", got)

	_, err = exchange(ctx, srv.Client(), srv.URL, "botedevacr.azurecr.io", "stolen")
	assert.ErrorContains(t, err, "401")
}
