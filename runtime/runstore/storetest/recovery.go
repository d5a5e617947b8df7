package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// testSilentAgent: a lost agent's claims go back to the queue for a live
// agent (a plan whether or not Terraform started, an apply only if it did
// not), an apply whose Terraform started needs attention and keeps the
// workspace until its agent's result (or an operator) settles it.
func testSilentAgent(t *testing.T, f Fixture) {
	// size: one scenario told step by step; each step depends on the state the previous one left.
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{}, nil)
	e.agent("a1", 1, nil)
	first := e.enqueue("app", runs.OpApply).Run
	second := e.enqueue("app", runs.OpApply).Run
	e.claim("app", "a1") // a1 dies before Terraform starts

	e.clock.Advance(45 * time.Second)
	e.agent("a2", 1, nil) // a2 stays alive
	swept, err := e.m.SweepSilentAgents(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, mine(e.tenant, swept), "a1 is not silent yet")

	e.clock.Advance(30 * time.Second)
	e.agent("a2", 1, nil)
	swept, err = e.m.SweepSilentAgents(e.ctx)
	require.NoError(t, err)
	require.Len(t, mine(e.tenant, swept), 1)
	assert.Equal(t, "a1", mine(e.tenant, swept)[0].ID)

	r, err := e.m.GetRun(e.ctx, e.tenant, first.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Queued, r.State, "a plan not started goes back to the queue")
	assert.Contains(t, r.LastReason(), "a1 stopped heartbeating")
	assert.Contains(t, r.LastReason(), "before Terraform started")
	assert.False(t, e.lock("app").Held(), "the dead agent's lock is released")

	agents, err := e.m.ListAgents(e.ctx, e.tenant)
	require.NoError(t, err)
	for _, a := range agents {
		assert.Equal(t, a.ID == "a1", !e.m.Online(a), a.ID)
	}
	_, err = e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: "app", Agent: "a1"})
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)

	next := e.claim("app", "a2")
	assert.Equal(t, first.ID, next.ID, "the run goes to a live agent, still ahead of the runs queued after it")

	// a1 comes back: told to stop the run it lost, and online again; its
	// late report changes nothing.
	stops, err := e.m.Heartbeat(e.ctx, runs.Heartbeat{Tenant: e.tenant, Agent: "a1", Capacity: 1, Running: []string{first.ID}})
	require.NoError(t, err)
	require.Len(t, stops, 1)
	assert.Contains(t, stops[0].Reason, "planning")
	_, err = e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: first.ID, Agent: "a1", State: runs.Applied})
	assert.ErrorIs(t, err, runs.ErrNotAssigned)
	_, err = e.m.Start(e.ctx, runs.StartRequest{Tenant: e.tenant, Run: first.ID, Agent: "a1", Claim: 2})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "the lost claim may not start Terraform")

	// a2 starts Terraform and is lost mid-plan: a plan changes nothing,
	// so it is planned again.
	started, err := e.m.Start(e.ctx, runs.StartRequest{Tenant: e.tenant, Run: first.ID, Agent: "a2", Claim: next.Claim()})
	require.NoError(t, err)
	require.NotNil(t, started.TerraformStarted)
	again, err := e.m.Start(e.ctx, runs.StartRequest{Tenant: e.tenant, Run: first.ID, Agent: "a2", Claim: next.Claim()})
	require.NoError(t, err)
	assert.Equal(t, started.TerraformStarted, again.TerraformStarted, "a repeated start changes nothing")
	e.loseAgent("a2", "a1")
	r, err = e.m.GetRun(e.ctx, e.tenant, first.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Queued, r.State)
	assert.Contains(t, r.LastReason(), "while Terraform was planning")

	// a1 plans; the apply's agent is lost before Terraform started: the
	// saved plan goes to another agent, the workspace stays held.
	e.claim("app", "a1")
	e.report(first.ID, "a1", runs.Planned, true)
	_, err = e.m.Approve(e.ctx, e.tenant, first.ID, "bob")
	require.NoError(t, err)
	e.claim("app", "a1")
	e.loseAgent("a1", "a2")
	r, err = e.m.GetRun(e.ctx, e.tenant, first.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Approved, r.State, "an apply not started goes back to approved")
	assert.Contains(t, r.LastReason(), "before Terraform started")
	assert.True(t, e.lock("app").Held())
	assert.Empty(t, e.lock("app").Agent)

	// a2 applies, Terraform starts, a2 is lost: needs attention, never
	// applied again by anyone.
	apply := e.claim("app", "a2")
	assert.Equal(t, first.ID, apply.ID)
	assert.Equal(t, runs.Applying, apply.State)
	_, err = e.m.Start(e.ctx, runs.StartRequest{Tenant: e.tenant, Run: first.ID, Agent: "a2", Claim: apply.Claim()})
	require.NoError(t, err)
	e.loseAgent("a2", "a1")
	r, err = e.m.GetRun(e.ctx, e.tenant, first.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.NeedsAttention, r.State)
	assert.Contains(t, r.LastReason(), "while Terraform was applying")
	assert.Contains(t, r.LastReason(), "may have changed resources and written part of the state")
	assert.True(t, e.lock("app").Held(), "the workspace waits for a person")
	_, err = e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: "app", Agent: "a1"})
	assert.ErrorIs(t, err, runs.ErrNothingToClaim)

	// a2 comes back still applying: not stopped; its result settles the run.
	stops, err = e.m.Heartbeat(e.ctx, runs.Heartbeat{Tenant: e.tenant, Agent: "a2", Capacity: 1, Running: []string{first.ID}})
	require.NoError(t, err)
	assert.Empty(t, stops)
	_, err = e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: first.ID, Agent: "a1", State: runs.Applied})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "only the lost agent settles it")
	r = e.report(first.ID, "a2", runs.Applied, true)
	assert.Equal(t, runs.Applied, r.State)
	assert.Equal(t, second.ID, e.claim("app", "a1").ID, "the workspace is free again")
	swept, err = e.m.SweepSilentAgents(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, mine(e.tenant, swept))
}

// loseAgent lets agent go silent while alive heartbeats, and sweeps.
func (e *env) loseAgent(agent, alive string) {
	e.t.Helper()
	e.clock.Advance(75 * time.Second)
	e.agent(alive, 1, nil)
	swept, err := e.m.SweepSilentAgents(e.ctx)
	require.NoError(e.t, err)
	require.Len(e.t, mine(e.tenant, swept), 1)
	require.Equal(e.t, agent, mine(e.tenant, swept)[0].ID)
	e.agent(agent, 1, nil) // back, without the run
}

func mine(tenant ids.TenantID, as []runs.Agent) []runs.Agent {
	var out []runs.Agent
	for _, a := range as {
		if a.Tenant == tenant {
			out = append(out, a)
		}
	}
	return out
}

func testTimeouts(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{PlanTimeout: 10 * time.Minute, ApprovalTimeout: time.Hour}, nil)
	e.agent("a1", 1, nil)
	e.enqueue("app", runs.OpApply)
	r := e.claim("app", "a1")

	e.clock.Advance(9 * time.Minute)
	e.agent("a1", 1, nil)
	ended, err := e.m.SweepTimeouts(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, ended)

	e.clock.Advance(2 * time.Minute)
	e.agent("a1", 1, nil)
	ended, err = e.m.SweepTimeouts(e.ctx)
	require.NoError(t, err)
	require.Len(t, ended, 1)
	assert.Equal(t, runs.TimedOut, ended[0].State)
	assert.Contains(t, ended[0].LastReason(), "planning passed its deadline")
	assert.False(t, e.lock("app").Held())
	stops, err := e.m.Heartbeat(e.ctx, runs.Heartbeat{Tenant: e.tenant, Agent: "a1", Capacity: 1, Running: []string{r.ID}})
	require.NoError(t, err)
	require.Len(t, stops, 1, "the agent learns to stop the timed-out run")

	// A plan nobody approves frees the workspace after ApprovalTimeout.
	e.enqueue("app", runs.OpApply)
	r = e.claim("app", "a1")
	r = e.report(r.ID, "a1", runs.Planned, true)
	assert.Equal(t, e.clock.Now().Add(time.Hour), r.Deadline)
	e.clock.Advance(61 * time.Minute)
	e.agent("a1", 1, nil)
	ended, err = e.m.SweepTimeouts(e.ctx)
	require.NoError(t, err)
	require.Len(t, ended, 1)
	assert.Equal(t, r.ID, ended[0].ID)
	assert.False(t, e.lock("app").Held())
}
