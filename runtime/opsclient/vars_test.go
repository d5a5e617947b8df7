package opsclient

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/opsapi"
)

func TestVarsRoundTrip(t *testing.T) {
	c, _, _ := newRunsServer(t)
	ctx := context.Background()
	_, err := c.CreateWorkspace(ctx, "contoso", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	v, err := c.SetVar(ctx, "contoso", "prod", "region", "westeurope", false)
	require.NoError(t, err)
	require.NotNil(t, v.Value)
	assert.Equal(t, "westeurope", *v.Value)
	_, err = c.SetVar(ctx, "contoso", "prod", "token", "x", true)
	var ae *APIError
	require.ErrorAs(t, err, &ae, "this server has no secret store")
	assert.Equal(t, 503, ae.StatusCode)

	list, err := c.Vars(ctx, "contoso", "prod")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "region", list[0].Name)

	v, err = c.UnsetVar(ctx, "contoso", "prod", "region")
	require.NoError(t, err)
	assert.False(t, v.Sensitive)
	_, err = c.UnsetVar(ctx, "contoso", "prod", "region")
	assert.True(t, IsNotFound(err))
}
