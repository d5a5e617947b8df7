package opsclient

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/opsapi"
)

// memState is the one kept state of every workspace named "prod".
var memState = []byte("{\"version\":4,\"serial\":9}")

func (m *memArtifacts) StateVersions(_ context.Context, _ ids.TenantID, workspace ids.WorkspaceID) ([]artifacts.StateVersion, error) {
	if workspace != "prod" {
		return nil, nil
	}
	return []artifacts.StateVersion{{Version: "run-0000000000000001-c5", Run: "run-0000000000000001", Claim: "5", Size: int64(len(memState)), Current: true}}, nil
}

func (m *memArtifacts) OpenState(_ context.Context, _ ids.TenantID, workspace ids.WorkspaceID, version string) ([]byte, error) {
	if workspace != "prod" || (version != "" && version != "run-0000000000000001-c5") {
		return nil, artifacts.ErrNotFound
	}
	return memState, nil
}

func (m *memArtifacts) RestoreState(_ context.Context, _ ids.TenantID, workspace ids.WorkspaceID, version string) (artifacts.StateVersion, error) {
	if workspace != "prod" || version != "run-0000000000000001-c5" {
		return artifacts.StateVersion{}, artifacts.ErrNotFound
	}
	return artifacts.StateVersion{Version: version, Current: true}, nil
}

func TestStateVersionsAndPull(t *testing.T) {
	c, _, _ := newRunsServer(t)
	ctx := context.Background()
	_, err := c.CreateWorkspace(ctx, "contoso", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)

	vs, err := c.StateVersions(ctx, "contoso", "prod")
	require.NoError(t, err)
	require.Len(t, vs, 1)
	assert.True(t, vs[0].Current)

	var buf bytes.Buffer
	v, err := c.PullState(ctx, "contoso", "prod", "", &buf)
	require.NoError(t, err)
	assert.Equal(t, "current", v)
	assert.Equal(t, memState, buf.Bytes())

	buf.Reset()
	_, err = c.PullState(ctx, "contoso", "prod", "run-0000000000000002-c5", &buf)
	assert.True(t, IsNotFound(err), "%v", err)
	assert.Empty(t, buf.Bytes())
	_, err = c.StateVersions(ctx, "contoso", "nope")
	assert.True(t, IsNotFound(err), "%v", err)

	v2, err := c.RollbackState(ctx, "contoso", "prod", "run-0000000000000001-c5")
	require.NoError(t, err)
	assert.True(t, v2.Current)
	_, err = c.RollbackState(ctx, "contoso", "prod", "run-0000000000000002-c5")
	assert.True(t, IsNotFound(err), "%v", err)
}

// TestPullStateChecksTheHash: bytes that do not match the SHA-256 the
// server stated (a transfer cut short, a proxy rewriting) are an error.
func TestPullStateChecksTheHash(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(opsapi.HeaderStateVersion, "current")
		w.Header().Set(opsapi.HeaderStateSHA256, "00")
		_, _ = w.Write(memState)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, "obk_x.y")
	_, err := c.PullState(context.Background(), "contoso", "prod", "", &bytes.Buffer{})
	require.ErrorContains(t, err, "SHA-256")
}
