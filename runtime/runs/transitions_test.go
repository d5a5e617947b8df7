package runs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// OnTransition feeds the audit log: every stored move exactly once, in
// order, and nothing for changes that move nothing (a cancel request) or
// that are refused.
func TestOnTransitionSeesEveryMoveOnce(t *testing.T) {
	ctx := context.Background()
	seen := map[string][]runs.Transition{}
	store := &lostAck{Store: runstore.NewMemory()}
	m := contoso(t, runs.Config{Store: store, OnTransition: func(_ context.Context, r runs.Run, tr runs.Transition) {
		seen[r.ID] = append(seen[r.ID], tr)
	}})
	_, err := m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "auto", Options: runs.Options{AutoApply: true}})
	require.NoError(t, err)
	claim := func(ws ids.WorkspaceID) runs.Run {
		t.Helper()
		r, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: ws, Agent: "a1"})
		require.NoError(t, err)
		return r
	}

	// Cancelled while planning: the cancel request moves nothing, the
	// agent's confirmation does.
	cancelled := enqueue(t, m)
	store.lose = 1 // the claim lands but its answer is lost: recovered, one move
	claim("prod")
	_, err = m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: cancelled.ID, By: "api-key:bob"})
	require.NoError(t, err)
	store.lose = 1 // likewise the report
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: cancelled.ID, Agent: "a1", State: runs.Cancelled})
	require.NoError(t, err)
	_, err = m.Approve(ctx, "contoso", cancelled.ID, "api-key:bob")
	require.ErrorIs(t, err, runs.ErrIllegalTransition)

	// Planned and auto-approved by one report, then applied.
	q, err := m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "auto", Operation: runs.OpApply, CreatedBy: "api-key:bob",
		Bundle: &runs.Artifact{Container: "c", Blob: "contoso/auto/b", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)
	applied := q.Run
	claim("auto")
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: applied.ID, Agent: "a1", State: runs.Planned,
		Result: &tfresult.Result{HasChanges: true}, Plan: &runs.Artifact{Container: "c", Blob: "contoso/auto/p", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)
	claim("auto")
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: applied.ID, Agent: "a1", State: runs.Applied})
	require.NoError(t, err)

	for _, tc := range []struct {
		id   string
		want []runs.State
	}{
		{cancelled.ID, []runs.State{runs.Queued, runs.Planning, runs.Cancelled}},
		{applied.ID, []runs.State{runs.Queued, runs.Planning, runs.Planned, runs.Approved, runs.Applying, runs.Applied}},
	} {
		r, err := m.GetRun(ctx, "contoso", tc.id)
		require.NoError(t, err)
		var got []runs.State
		for _, tr := range seen[tc.id] {
			got = append(got, tr.To)
		}
		assert.Equal(t, tc.want, got)
		require.Len(t, r.History, len(seen[tc.id]))
		for i, tr := range seen[tc.id] {
			assert.Equal(t, r.History[i].To, tr.To)
			assert.Equal(t, r.History[i].By, tr.By)
			assert.True(t, r.History[i].At.Equal(tr.At))
		}
	}
	assert.Equal(t, "api-key:bob", seen[applied.ID][0].By)
	assert.Equal(t, "auto-apply", seen[applied.ID][3].By)
}

// An approval or cancel whose write lands but whose answer is lost
// succeeds (it used to fail as an illegal move from the state it had just
// made) and is reported once.
func TestChangeWithLostAnswerSucceedsOnce(t *testing.T) {
	ctx := context.Background()
	var moves []runs.State
	store := &lostAck{Store: runstore.NewMemory()}
	m := contoso(t, runs.Config{Store: store, OnTransition: func(_ context.Context, _ runs.Run, tr runs.Transition) {
		moves = append(moves, tr.To)
	}})
	q := enqueue(t, m)
	_, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: q.ID, Agent: "a1", State: runs.Planned,
		Result: &tfresult.Result{HasChanges: true}, Plan: &runs.Artifact{Container: "c", Blob: "contoso/prod/p", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)

	store.lose = 1
	r, err := m.Approve(ctx, "contoso", q.ID, "api-key:bob")
	require.NoError(t, err, "the approval landed")
	assert.Equal(t, runs.Approved, r.State)
	store.lose = 1
	r, err = m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: q.ID, By: "api-key:bob"})
	require.NoError(t, err, "the cancel landed")
	assert.Equal(t, runs.Cancelled, r.State)
	assert.Equal(t, []runs.State{runs.Queued, runs.Planning, runs.Planned, runs.Approved, runs.Cancelled}, moves)
}

// A component built on the Manager registers for transitions once it
// exists (SubscribeTransitions): it sees every move after
// Config.OnTransition, in the same order, and nothing stored before it
// registered.
func TestSubscribeTransitionsAfterOnTransition(t *testing.T) {
	ctx := context.Background()
	var order []string
	m := contoso(t, runs.Config{Store: runstore.NewMemory(), OnTransition: func(_ context.Context, _ runs.Run, tr runs.Transition) {
		order = append(order, "config "+string(tr.To))
	}})
	enqueue(t, m) // before anyone subscribed
	m.SubscribeTransitions(func(_ context.Context, _ runs.Run, tr runs.Transition) {
		order = append(order, "subscribed "+string(tr.To))
	})
	assert.Equal(t, []string{"config " + string(runs.Queued)}, order, "not replayed")
	order = nil
	r, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"config " + string(r.State), "subscribed " + string(r.State)}, order)
}
