package runs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// TestDriftCheckIsNeverApproved: a drift check's refresh-only plan that
// found drift is planned until the drift recorder cancels it; in that
// window (or while the recorder keeps failing) nobody may approve it:
// applying it would write the drift into the state and hide it.
func TestDriftCheckIsNeverApproved(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	q, err := m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", Operation: runs.OpApply, CreatedBy: "drift-check", CreatedByID: "system:drift-check",
		Bundle: &runs.Artifact{Container: "c", Blob: "contoso/prod/b", Size: 1, SHA256: strings.Repeat("0", 64)}, PlanOptions: runspec.PlanOptions{RefreshOnly: true}, DriftCheck: true})
	require.NoError(t, err)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	r, err := m.Report(ctx, runs.Report{Tenant: "contoso", Run: q.Run.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true},
		Plan: &runs.Artifact{Container: "c", Blob: "contoso/prod/" + q.Run.ID + "/workdir", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)
	require.Equal(t, runs.Planned, r.State)

	for _, req := range []runs.ApproveRequest{
		{Tenant: "contoso", Run: r.ID, By: "bob", ByID: "bob"},
		{Tenant: "contoso", Run: r.ID, By: "bob", ByID: "bob", OverridePolicy: true},
	} {
		_, err = m.ApproveRun(ctx, req)
		require.ErrorIs(t, err, runs.ErrInvalid)
		assert.Contains(t, err.Error(), "run "+r.ID+" is a drift check: it only looks and is never applied")
	}
	r, err = m.GetRun(ctx, "contoso", r.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Planned, r.State, "a refused approval changes nothing")
	_, err = m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: r.ID, By: "drift-check"})
	require.NoError(t, err, "the recorder still ends it")
}
