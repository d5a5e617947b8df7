package dispatch

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
)

// lockedWriter serialises writes of concurrent loggers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// fakeAudit keeps what is recorded.
type fakeAudit struct {
	mu  sync.Mutex
	got []audit.Record
}

func (f *fakeAudit) Record(_ context.Context, r audit.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, r)
}

func (f *fakeAudit) records() []audit.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]audit.Record(nil), f.got...)
}

func (e *env) loggedLines(substr string) int {
	return strings.Count(e.roleLog.String(), substr)
}

// TestNonAgentConnectorIsRefused: a registered connector of the tenant
// without the agent role heartbeats as an agent with labels of its own
// choosing, then reports on a run with the agent's claim token. Every
// message is refused and logged, it is never handed a run, and nothing
// about the run, its log or the agents changes.
func TestNonAgentConnectorIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	require.NoError(t, e.secrets.Put(ctx, "tenant-a", "prod", runproto.Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "s3cret"}}))

	// Alone, it never gets a run.
	requireRefused(t, e.from("tenant-a", "erp", &runproto.Heartbeat{Capacity: 8, Labels: map[string]string{"env": "prod"}}))
	r := e.enqueue(runs.OpApply)
	assert.Empty(t, e.d.DispatchWorkspace(ctx, "tenant-a", "prod"))
	assert.Empty(t, e.sender.take(), "no run.assign to anyone")
	agents, err := e.m.ListAgents(ctx, "tenant-a")
	require.NoError(t, err)
	assert.Empty(t, agents, "the refused heartbeat recorded no agent")

	// With an agent online, the run goes to the agent.
	e.heartbeat("tenant-a", "a1")
	to, a := e.assigned()
	assert.Equal(t, "a1", to.agent)
	off := a.LogOffset
	for _, msg := range []runproto.Message{
		&runproto.Heartbeat{Capacity: 8, Running: []string{r.ID}},
		&runproto.Started{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan},
		&runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 0, Lines: []string{"FORGED"}, Offset: &off},
		&runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Failed, LastSeq: -1},
	} {
		requireRefused(t, e.from("tenant-a", "erp", msg))
	}
	got := e.run(r.ID)
	assert.Equal(t, runs.Planning, got.State)
	assert.Equal(t, "a1", got.Agent)
	assert.Empty(t, e.logs.text(r.ID))
	assert.Empty(t, e.sender.take())
	assert.EqualValues(t, 5, e.d.RoleRefusals())
	assert.Equal(t, 5, e.loggedLines("agent message refused: sender is not a registered agent of its tenant"))
	assert.Contains(t, e.roleLog.String(), `connector=erp`)
	assert.Contains(t, e.roleLog.String(), `no role \"agent\"`)

	// Each refusal is in the tenant's audit log, naming what was tried.
	recs := e.audited.records()
	require.Len(t, recs, 5)
	var actions []string
	for _, rec := range recs {
		assert.Equal(t, "tenant-a", rec.Tenant)
		assert.Equal(t, "connector:erp", rec.Principal)
		assert.Equal(t, audit.ResultDenied, rec.Result)
		assert.Contains(t, rec.Detail, `connector tenant-a/erp is not registered as an agent`)
		actions = append(actions, rec.Action)
	}
	assert.Equal(t, []string{"agent.heartbeat", "agent.heartbeat", "run.started", "run.logs", "run.result"}, actions)
	assert.Equal(t, "connector tenant-a/erp", recs[0].Object)
	assert.Equal(t, "/v1/tenants/tenant-a/runs/"+r.ID, recs[4].Object)
}

// TestRefusalsAreAuditedAtABoundedRate: a connector that floods the
// server cannot make it write a record per message; every one is logged
// and counted, and the next record says how many were not recorded.
func TestRefusalsAreAuditedAtABoundedRate(t *testing.T) {
	e := newEnv(t)
	for range refusalAuditBurst + 30 {
		requireRefused(t, e.from("tenant-a", "erp", &runproto.Heartbeat{Capacity: 1}))
	}
	assert.Len(t, e.audited.records(), refusalAuditBurst)
	assert.EqualValues(t, refusalAuditBurst+30, e.d.RoleRefusals())
	e.advance(time.Minute)
	requireRefused(t, e.from("tenant-a", "erp", &runproto.Heartbeat{Capacity: 1}))
	recs := e.audited.records()
	require.Len(t, recs, refusalAuditBurst+1)
	assert.Contains(t, recs[len(recs)-1].Detail, "(and 30 more refused agent messages since 2026-11-23T12:00:00Z, not recorded one by one)")
}

// TestHeartbeatLabelsNarrowNeverWiden: a2 is registered for env=prod; its
// heartbeat claims tier=gold as well, and it serves only env=prod.
func TestHeartbeatLabelsNarrowNeverWiden(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "tenant-a", Name: "gold", AgentLabels: map[string]string{"tier": "gold"}})
	require.NoError(t, err)
	_, err = e.m.UpdateWorkspace(ctx, "tenant-a", "prod", func(w *runs.Workspace) { w.AgentLabels = map[string]string{"env": "prod"} })
	require.NoError(t, err)

	require.NoError(t, e.from("tenant-a", "a2", &runproto.Heartbeat{Capacity: 2, Labels: map[string]string{"env": "prod", "tier": "gold"}}))
	agents, err := e.m.ListAgents(ctx, "tenant-a")
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, map[string]string{"env": "prod"}, agents[0].Labels)
	assert.Contains(t, e.roleLog.String(), "agent heartbeat claims labels its registration does not grant")

	e.enqueue(runs.OpApply) // in prod
	q, err := e.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "tenant-a", Workspace: "gold", Operation: runs.OpApply,
		Bundle: &runs.Artifact{Container: "boteruns", Blob: "tenant-a/gold/b.tar.gz", Size: 3, SHA256: hash([]byte("abc"))}})
	require.NoError(t, err)
	assert.Empty(t, e.d.DispatchWorkspace(ctx, "tenant-a", "gold"), "tier=gold is not a2's")
	assert.Equal(t, runs.Queued, e.run(q.Run.ID).State)
	to, _ := e.assigned() // prod selects env=prod: a2's
	assert.Equal(t, "a2", to.agent)

	// a1 has no registered labels: claiming some gets it none.
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Heartbeat{Capacity: 1, Labels: map[string]string{"tier": "gold"}}))
	assert.Empty(t, e.d.DispatchWorkspace(ctx, "tenant-a", "gold"))
	assert.Empty(t, e.sender.take())
}

// TestSecretsAreSealedOnlyToAnAgentOfTheTenant: whatever the run names as
// its agent, an assignment is made only for an active agent of the run's
// tenant.
func TestSecretsAreSealedOnlyToAnAgentOfTheTenant(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	require.NoError(t, e.secrets.Put(ctx, "tenant-a", "prod", runproto.Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "s3cret"}}))
	r := e.enqueue(runs.OpApply)
	for agent, want := range map[string]string{
		"erp":   `connector tenant-a/erp is not registered as an agent`,
		"a3":    "connector tenant-a/a3 is disabled",
		"b1":    "tenant-a/b1 is not a registered connector",
		"ghost": "tenant-a/ghost is not a registered connector",
	} {
		r.Agent = agent
		_, err := e.d.assignment(ctx, r)
		assert.ErrorContains(t, err, want, agent)
	}
	r.Agent = "a1"
	a, err := e.d.assignment(ctx, r)
	require.NoError(t, err)
	_, err = runproto.OpenSecrets(e.keys["tenant-a/a1"], a.Secrets)
	assert.NoError(t, err)
	_, err = runproto.OpenSecrets(e.keys["tenant-a/erp"], a.Secrets)
	assert.ErrorIs(t, err, runproto.ErrSealed)
	assert.False(t, bytes.Contains([]byte(a.Secrets), []byte("s3cret")))
}

// TestAgentActingOnAnotherClaimIsAudited: registered agents that report on
// a run they do not hold (another agent's claim in their tenant, a run of
// another tenant, a claim token that never existed) are refused, and each
// refusal is in the sender's tenant's audit log: an agent doing that is
// broken or taken over.
func TestAgentActingOnAnotherClaimIsAudited(t *testing.T) {
	e := newEnv(t)
	r := e.enqueue(runs.OpApply)
	e.heartbeat("tenant-a", "a1")
	_, a := e.assigned()
	for _, tc := range []struct {
		tenant, agent string
		msg           runproto.Message
	}{
		{"tenant-a", "a2", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Failed, LastSeq: -1}},
		{"tenant-a", "a2", &runproto.Renew{RunID: r.ID, ClaimToken: a.ClaimToken}},
		{"tenant-a", "a1", &runproto.Started{RunID: r.ID, ClaimToken: "99", Phase: runproto.PhasePlan}},
		{"tenant-b", "b1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 0, Lines: []string{"FORGED"}}},
	} {
		requireRefused(t, e.from(tc.tenant, tc.agent, tc.msg))
	}
	assert.Equal(t, runs.Planning, e.run(r.ID).State)
	recs := e.audited.records()
	require.Len(t, recs, 4)
	for i, want := range []struct{ tenant, principal, action string }{
		{"tenant-a", "connector:a2", "run.result"},
		{"tenant-a", "connector:a2", "run.renew"},
		{"tenant-a", "connector:a1", "run.started"},
		{"tenant-b", "connector:b1", "run.logs"},
	} {
		assert.Equal(t, want.tenant, recs[i].Tenant)
		assert.Equal(t, want.principal, recs[i].Principal)
		assert.Equal(t, want.action, recs[i].Action)
		assert.Equal(t, audit.ResultDenied, recs[i].Result)
		assert.Contains(t, recs[i].Detail, "agent message refused")
	}
}
