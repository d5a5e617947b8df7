package opsclient

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForward(t *testing.T) {
	srv, _, key := newServer(t)
	c := newClient(t, srv.URL, key)
	ctx := context.Background()

	resp, err := c.Forward(ctx, http.MethodGet, "/v1/agents", "tenant=contoso", nil, "")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"contoso/a1"`)
	assert.NotContains(t, string(body), `"fabrikam/a1"`, "the query went along")

	// Refusals come back as answers, not errors: the caller passes them on.
	resp, err = c.Forward(ctx, http.MethodGet, "/v1/tenants/contoso/runs/run-x", "", nil, "")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	for _, tt := range []struct{ path, query, want string }{
		{"/healthz", "", "only /v1/ paths"},
		{"http://elsewhere/v1/agents", "", "only /v1/ paths"},
		{"/v1/agents", "a=%zz", "bad query"},
		// Nothing but an API path reaches the server, however spelled.
		{"/v1/../healthz", "", "dot segment"},
		{"/v1/%2e%2e/healthz", "", "dot segment"},
		{"/v1/tenants/..%2F..%2Fhealthz", "", "dot segment"},
		{"/v1/./agents", "", "dot segment"},
		{"/v1/agents?tenant=fabrikam", "", "only /v1/ paths"},
		{"/v1/agents#x", "", "only /v1/ paths"},
		{"/v1/%zz", "", "bad path"},
	} {
		_, err := c.Forward(ctx, http.MethodGet, tt.path, tt.query, nil, "")
		assert.ErrorContains(t, err, tt.want, tt.path)
	}
}
