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
)

// roster is a registry: agent id → registered labels; absent = no agent.
type roster map[string]map[string]string

func (r roster) Agent(tenant ids.TenantID, id string) (map[string]string, bool) {
	l, ok := r[string(tenant)+"/"+id]
	return l, ok
}

func TestServedLabels(t *testing.T) {
	reg := map[string]string{"env": "prod", "pool": "eu"}
	tests := []struct {
		name        string
		registered  map[string]string
		claimed     map[string]string
		want        map[string]string
		wantDropped []string
	}{
		{"no claim serves the registration", reg, nil, reg, nil},
		{"a narrower claim", reg, map[string]string{"env": "prod"}, map[string]string{"env": "prod"}, nil},
		{"a wider claim is cut to the registration", reg, map[string]string{"env": "prod", "tier": "gold"}, map[string]string{"env": "prod"}, []string{"tier"}},
		{"another value is not granted", reg, map[string]string{"env": "dev", "pool": "eu"}, map[string]string{"pool": "eu"}, []string{"env"}},
		{"no registered labels grant none", nil, map[string]string{"env": "prod"}, map[string]string{}, []string{"env"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := runs.ServedLabels(tt.registered, tt.claimed)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantDropped, dropped)
		})
	}
}

// TestRosterDecidesWhoIsAnAgent: the registry, not the heartbeat, says
// who is an agent and which labels it serves, at the heartbeat and again
// at every claim.
func TestRosterDecidesWhoIsAnAgent(t *testing.T) {
	ctx := context.Background()
	reg := roster{"contoso/a1": {"env": "prod"}}
	m, err := runs.New(runs.Config{Store: runstore.NewMemory(), Roster: reg})
	require.NoError(t, err)
	_, err = m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	for _, w := range []runs.Workspace{
		{Tenant: "contoso", Name: "prod", AgentLabels: map[string]string{"env": "prod"}},
		{Tenant: "contoso", Name: "gold", AgentLabels: map[string]string{"tier": "gold"}},
	} {
		_, err = m.CreateWorkspace(ctx, w)
		require.NoError(t, err)
	}
	enqueueIn := func(ws ids.WorkspaceID) runs.Run {
		q, err := m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: ws, Operation: runs.OpApply,
			Bundle: &runs.Artifact{Container: "c", Blob: "contoso/" + string(ws) + "/b", Size: 1, SHA256: strings.Repeat("0", 64)}})
		require.NoError(t, err)
		return q.Run
	}

	// A registered connector without the agent role heartbeats as one,
	// with labels of its own choosing: refused, nothing recorded.
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "erp-bridge", Capacity: 4, Labels: map[string]string{"tier": "gold", "env": "prod"}})
	assert.ErrorIs(t, err, runs.ErrNotAgent)
	agents, err := m.ListAgents(ctx, "contoso")
	require.NoError(t, err)
	assert.Empty(t, agents)
	gold := enqueueIn("gold")
	_, err = m.Dispatch(ctx, "contoso", "gold")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = m.ClaimNext(ctx, "contoso", "erp-bridge")
	assert.ErrorIs(t, err, runs.ErrNotFound, "it was never recorded as an agent")

	// The agent claims wider labels than registered: it serves only the
	// registered ones.
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 2, Labels: map[string]string{"tier": "gold", "env": "prod"}})
	require.NoError(t, err)
	agents, err = m.ListAgents(ctx, "contoso")
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, map[string]string{"env": "prod"}, agents[0].Labels)
	_, err = m.Dispatch(ctx, "contoso", "gold")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable, "tier=gold is not granted")
	got, err := m.GetRun(ctx, "contoso", gold.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Queued, got.State)
	waiting, err := m.Waiting(ctx, got)
	require.NoError(t, err)
	assert.Contains(t, waiting, "has the labels tier=gold")

	prod := enqueueIn("prod")
	r, err := m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, prod.ID, r.ID)
	assert.Equal(t, "a1", r.Agent)

	// The registry withdraws the role: no further claim, although the
	// agent's last heartbeat is fresh.
	enqueueIn("prod") // waits behind the running one; then:
	delete(reg, "contoso/a1")
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Failed, Reason: "test"})
	require.NoError(t, err)
	_, err = m.Dispatch(ctx, "contoso", "prod")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = m.ClaimNext(ctx, "contoso", "a1")
	assert.ErrorIs(t, err, runs.ErrNotAgent)
	assert.ErrorContains(t, err, "contoso/a1")
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	assert.ErrorIs(t, err, runs.ErrNotAgent)

	// Registered again with narrower labels: the stored heartbeat does not
	// bring the old ones back.
	reg["contoso/a1"] = map[string]string{}
	_, err = m.Dispatch(ctx, "contoso", "prod")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable, "env=prod is no longer granted")
	reg["contoso/a1"] = map[string]string{"env": "prod"}
	_, err = m.Dispatch(ctx, "contoso", "prod")
	assert.NoError(t, err)
}
