package runs_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// Startable is true exactly when Dispatch could start a run of the
// workspace: one queued, or an approved one waiting for its apply.
func TestStartable(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	startable := func() bool {
		t.Helper()
		ok, err := m.Startable(ctx, "contoso", "prod")
		require.NoError(t, err)
		return ok
	}
	assert.False(t, startable(), "no run")
	r := enqueue(t, m)
	assert.True(t, startable(), "queued")
	c, err := m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.False(t, startable(), "planning")
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Planned, Claim: c.Claim(), Result: &tfresult.Result{HasChanges: true},
		Plan: &runs.Artifact{Container: "c", Blob: "contoso/prod/plan", Size: 1, SHA256: r.Bundle.SHA256}})
	require.NoError(t, err)
	assert.False(t, startable(), "waiting for approval")
	_, err = m.Approve(ctx, "contoso", r.ID, "bob")
	require.NoError(t, err)
	assert.True(t, startable(), "approved")
	c, err = m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.False(t, startable(), "applying")
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Applied, Claim: c.Claim()})
	require.NoError(t, err)
	assert.False(t, startable(), "done")
}
