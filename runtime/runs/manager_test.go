package runs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
)

func TestEnqueueValidation(t *testing.T) {
	ctx := context.Background()
	m, err := runs.New(runs.Config{Store: runstore.NewMemory()})
	require.NoError(t, err)
	_, err = m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod"})
	require.NoError(t, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "fabrikam", Name: "prod"})
	assert.ErrorIs(t, err, runs.ErrNotFound, "a workspace needs its tenant")
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod"})
	assert.ErrorIs(t, err, runs.ErrExists)

	bundle := func(blob string) *envelope.Claim {
		return &envelope.Claim{Container: "boteruns", Blob: blob, Size: 1, SHA256: strings.Repeat("0", 64)}
	}
	id := runs.NewRunID(time.Now())
	for _, tc := range []struct {
		name string
		req  runs.EnqueueRequest
		want error
	}{
		{"ok with allocated id", runs.EnqueueRequest{ID: id, Operation: runs.OpApply, Bundle: bundle("contoso/prod/" + id + "/bundle")}, nil},
		{"same id twice", runs.EnqueueRequest{ID: id, Operation: runs.OpApply, Bundle: bundle("contoso/prod/" + id + "/bundle")}, runs.ErrConflict},
		{"bad operation", runs.EnqueueRequest{Operation: "import", Bundle: bundle("contoso/prod/b")}, runs.ErrInvalid},
		{"no bundle", runs.EnqueueRequest{Operation: runs.OpApply}, runs.ErrInvalid},
		{"bad bundle", runs.EnqueueRequest{Operation: runs.OpApply, Bundle: &envelope.Claim{Blob: "contoso/prod/b"}}, runs.ErrInvalid},
		{"bad id", runs.EnqueueRequest{ID: "run-1", Operation: runs.OpApply, Bundle: bundle("contoso/prod/b")}, runs.ErrInvalid},
		{"long message", runs.EnqueueRequest{Operation: runs.OpApply, Bundle: bundle("contoso/prod/b"), Message: strings.Repeat("m", 2000)}, runs.ErrInvalid},
		{"unknown workspace", runs.EnqueueRequest{Workspace: "dev", Operation: runs.OpApply, Bundle: bundle("contoso/dev/b")}, runs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Tenant = "contoso"
			if req.Workspace == "" {
				req.Workspace = "prod"
			}
			q, err := m.Enqueue(ctx, req)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, id, q.Run.ID)
			assert.Equal(t, "no agent of tenant contoso is online", q.Waiting)
		})
	}
}
