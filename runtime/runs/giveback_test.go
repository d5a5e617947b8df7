package runs_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
)

// A refused claim goes back to the queue; one whose Terraform was let
// start cannot be given back; a claim given back MaxGiveBacks times
// fails the run instead of going round forever.
func TestGiveBack(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	r := enqueue(t, m)
	claim := func() runs.Run {
		t.Helper()
		c, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
		require.NoError(t, err)
		require.Equal(t, r.ID, c.ID)
		return c
	}
	giveBack := func(c runs.Run) (runs.Run, error) {
		return m.GiveBack(ctx, runs.GiveBackRequest{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: c.Claim(), Reason: "at its concurrency limit"})
	}

	c := claim()
	_, err := m.GiveBack(ctx, runs.GiveBackRequest{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: c.Claim() - 1, Reason: "old"})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "an earlier claim")
	_, err = m.GiveBack(ctx, runs.GiveBackRequest{Tenant: "contoso", Run: r.ID, Agent: "a2", Claim: c.Claim(), Reason: "not mine"})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "another agent's claim")
	back, err := giveBack(c)
	require.NoError(t, err)
	assert.Equal(t, runs.Queued, back.State)
	assert.Equal(t, "agent a1 gave the run back: at its concurrency limit", back.LastReason())
	_, err = giveBack(c)
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "a redelivered refusal changes nothing")

	c = claim()
	_, err = m.Start(ctx, runs.StartRequest{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: c.Claim()})
	require.NoError(t, err)
	_, err = giveBack(c)
	assert.ErrorIs(t, err, runs.ErrInvalid, "Terraform was let start")
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Failed})
	require.NoError(t, err)

	// Given back MaxGiveBacks times, the next loss fails the run.
	r = enqueue(t, m)
	for range runs.MaxGiveBacks {
		back, err = giveBack(claim())
		require.NoError(t, err)
		require.Equal(t, runs.Queued, back.State)
	}
	back, err = giveBack(claim())
	require.NoError(t, err)
	assert.Equal(t, runs.Failed, back.State)
	assert.Contains(t, back.LastReason(), "went back to the queue 5 times already")
}

// An agent that refuses because it shuts down gets no further run until
// it heartbeats without draining.
func TestDrainingAgentGetsNoRun(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	r := enqueue(t, m)
	c, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.GiveBack(ctx, runs.GiveBackRequest{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: c.Claim(), Reason: "shutting down", Draining: true})
	require.NoError(t, err)
	_, err = m.Dispatch(ctx, "contoso", "prod")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)
	waiting, err := m.Waiting(ctx, r)
	require.NoError(t, err)
	assert.Contains(t, waiting, "busy")

	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1, Draining: true})
	require.NoError(t, err)
	_, err = m.Dispatch(ctx, "contoso", "prod")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1}) // restarted
	require.NoError(t, err)
	got, err := m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, r.ID, got.ID)
}

// A report names its claim: one of a claim given back is refused even
// when the same agent claimed the run again meanwhile.
func TestReportOfAnEarlierClaimOfTheSameAgent(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	r := enqueue(t, m)
	first, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.GiveBack(ctx, runs.GiveBackRequest{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: first.Claim(), Reason: "busy"})
	require.NoError(t, err)
	again, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	require.NotEqual(t, first.Claim(), again.Claim())

	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: first.Claim(), State: runs.Failed})
	assert.ErrorIs(t, err, runs.ErrNotAssigned)
	got, err := m.GetRun(ctx, "contoso", r.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Planning, got.State)
	done, err := m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", Claim: again.Claim(), State: runs.Failed})
	require.NoError(t, err)
	assert.Equal(t, runs.Failed, done.State)
}
