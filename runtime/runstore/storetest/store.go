package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

func testTenants(t *testing.T, f Fixture) {
	ctx := context.Background()
	id := unique("t")
	require.NoError(t, f.Store.CreateTenant(ctx, runs.Tenant{ID: id, DisplayName: "Contoso"}))
	assert.ErrorIs(t, f.Store.CreateTenant(ctx, runs.Tenant{ID: id}), runs.ErrExists)
	got, err := f.Store.GetTenant(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "Contoso", got.DisplayName)
	_, err = f.Store.GetTenant(ctx, unique("missing"))
	assert.ErrorIs(t, err, runs.ErrNotFound)
	all, err := f.Store.ListTenants(ctx)
	require.NoError(t, err)
	assert.Contains(t, tenantIDs(all), string(id))
	// A store builds keys from typed ids and checks them no more: what
	// would break a key ('|', '/', an empty or overlong id) cannot become
	// an ids.TenantID, which only ids.ParseTenantID makes outside tests.
	for _, bad := range []string{"", "a|b", "a/b", "-x", strings.Repeat("x", 200)} {
		_, err := ids.ParseTenantID(bad)
		assert.Error(t, err, "tenant id %q", bad)
	}
}

func testWorkspaces(t *testing.T, f Fixture) {
	ctx := context.Background()
	tenant := unique("t")
	w := runs.Workspace{Tenant: tenant, Name: "prod", AgentLabels: map[string]string{"env": "prod"}, Options: runs.Options{AutoApply: true, PlanTimeout: time.Minute}}
	require.NoError(t, f.Store.CreateWorkspace(ctx, w))
	assert.ErrorIs(t, f.Store.CreateWorkspace(ctx, w), runs.ErrExists)
	require.NoError(t, f.Store.CreateWorkspace(ctx, runs.Workspace{Tenant: tenant, Name: "dev"}))

	got, err := f.Store.GetWorkspace(ctx, tenant, "prod")
	require.NoError(t, err)
	assert.Equal(t, w.Options, got.Options)
	assert.Equal(t, w.AgentLabels, got.AgentLabels)
	require.NotEmpty(t, got.ETag)

	stale := got
	got.Description = "production"
	require.NoError(t, f.Store.UpdateWorkspace(ctx, got))
	stale.Description = "lost update"
	assert.ErrorIs(t, f.Store.UpdateWorkspace(ctx, stale), runs.ErrConflict)

	list, err := f.Store.ListWorkspaces(ctx, tenant)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, ids.WorkspaceID("dev"), list[0].Name)
	assert.Equal(t, "production", list[1].Description)

	_, err = f.Store.GetWorkspace(ctx, tenant, "staging")
	assert.ErrorIs(t, err, runs.ErrNotFound)
}

func newRun(tenant ids.TenantID, ws ids.WorkspaceID, at time.Time) runs.Run {
	return runs.Run{
		ID: runs.NewRunID(at), Tenant: tenant, Workspace: ws, Operation: runs.OpApply, State: runs.Queued,
		CreatedAt: at, UpdatedAt: at, Bundle: Bundle("b"),
		History: []runs.Transition{{To: runs.Queued, At: at}},
	}
}

func testCommit(t *testing.T, f Fixture) {
	ctx := context.Background()
	tenant, ws := unique("t"), ids.WorkspaceID("app")
	now := time.Now().UTC()
	r1 := newRun(tenant, ws, now)
	lock := runs.Lock{Tenant: tenant, Workspace: ws, Run: r1.ID, Agent: "a1", Since: now}
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{r1}, Lock: &lock}))

	// A second lock insert loses, and its run is not written either.
	r2 := newRun(tenant, ws, now.Add(time.Millisecond))
	other := runs.Lock{Tenant: tenant, Workspace: ws, Run: r2.ID, Agent: "a2"}
	err := f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{r2}, Lock: &other})
	require.ErrorIs(t, err, runs.ErrConflict)
	_, err = f.Store.GetRun(ctx, tenant, r2.ID)
	assert.ErrorIs(t, err, runs.ErrNotFound, "a failed commit must write nothing")

	// Creating an existing run conflicts, in its workspace or another.
	assert.ErrorIs(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{r1}}), runs.ErrConflict)
	twin := r1
	twin.Workspace = "other"
	assert.ErrorIs(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: "other", Runs: []runs.Run{twin}}), runs.ErrConflict)
	// A run id is per tenant: another tenant may reuse it (ids are random).
	alien := r1
	alien.Tenant = unique("t")
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: alien.Tenant, Workspace: ws, Runs: []runs.Run{alien}}))

	got, err := f.Store.GetRun(ctx, tenant, r1.ID)
	require.NoError(t, err)
	gotLock, err := f.Store.GetLock(ctx, tenant, ws)
	require.NoError(t, err)
	assert.Equal(t, r1.ID, gotLock.Run)

	// Update with current ETags succeeds once; the stale copy then loses.
	got.State, gotLock.Agent = runs.Planning, "a1"
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{got}, Lock: &gotLock}))
	assert.ErrorIs(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{got}}), runs.ErrConflict)
	assert.ErrorIs(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Lock: &gotLock}), runs.ErrConflict)

	// Held locks are listed, by tenant, agent and deadline; free ones not.
	held, err := f.Store.ListLocks(ctx, runs.LockQuery{Tenant: tenant})
	require.NoError(t, err)
	require.Len(t, held, 1)
	assert.Equal(t, r1.ID, held[0].Run)
	byAgent, err := f.Store.ListLocks(ctx, runs.LockQuery{Tenant: tenant, Agent: "a2"})
	require.NoError(t, err)
	assert.Empty(t, byAgent)
	gotLock, err = f.Store.GetLock(ctx, tenant, ws)
	require.NoError(t, err)
	gotLock.Deadline = now.Add(time.Minute)
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Lock: &gotLock}))
	expired, err := f.Store.ListLocks(ctx, runs.LockQuery{ExpiredBy: now.Add(2 * time.Minute)})
	require.NoError(t, err)
	assert.Contains(t, lockRuns(expired), r1.ID)
	notYet, err := f.Store.ListLocks(ctx, runs.LockQuery{ExpiredBy: now})
	require.NoError(t, err)
	assert.NotContains(t, lockRuns(notYet), r1.ID)
	gotLock, err = f.Store.GetLock(ctx, tenant, ws)
	require.NoError(t, err)
	gotLock.Run, gotLock.Agent, gotLock.Deadline = "", "", time.Time{}
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Lock: &gotLock}))
	held, err = f.Store.ListLocks(ctx, runs.LockQuery{Tenant: tenant})
	require.NoError(t, err)
	assert.Empty(t, held, "a released lock is not listed")

	// A commit cannot write outside its workspace.
	stray := newRun(tenant, "other", now)
	assert.Error(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{stray}}))

	// A workspace never locked reads as free.
	free, err := f.Store.GetLock(ctx, tenant, "never")
	require.NoError(t, err)
	assert.False(t, free.Held())
	assert.Empty(t, free.ETag)
}

func lockRuns(ls []runs.Lock) []string { return pluck(ls, func(l runs.Lock) string { return l.Run }) }

func runIDs(rs []runs.Run) []string { return pluck(rs, func(r runs.Run) string { return r.ID }) }

func tenantIDs(ts []runs.Tenant) []string {
	return pluck(ts, func(t runs.Tenant) string { return string(t.ID) })
}

func pluck[T any](xs []T, f func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func testListRuns(t *testing.T, f Fixture) {
	ctx := context.Background()
	tenant, ws := unique("t"), ids.WorkspaceID("app")
	base := time.Now().UTC()
	var ids []string
	for i := range 5 {
		r := newRun(tenant, ws, base.Add(time.Duration(i)*time.Millisecond))
		if i%2 == 1 {
			r.State = runs.Failed
		}
		require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{r}}))
		ids = append(ids, r.ID)
	}
	lock := runs.Lock{Tenant: tenant, Workspace: ws, Run: ids[0], Agent: "a"}
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Lock: &lock}))

	all, err := f.Store.ListRuns(ctx, tenant, ws, runs.RunQuery{})
	require.NoError(t, err)
	assert.Equal(t, ids, runIDs(all), "oldest first, and the lock is not a run")
	queued, err := f.Store.ListRuns(ctx, tenant, ws, runs.RunQuery{States: []runs.State{runs.Queued}})
	require.NoError(t, err)
	assert.Equal(t, []string{ids[0], ids[2], ids[4]}, runIDs(queued))
	both, err := f.Store.ListRuns(ctx, tenant, ws, runs.RunQuery{States: []runs.State{runs.Queued, runs.Failed}})
	require.NoError(t, err)
	assert.Len(t, both, 5)
	from, err := f.Store.ListRuns(ctx, tenant, ws, runs.RunQuery{States: []runs.State{runs.Queued}, From: ids[1]})
	require.NoError(t, err)
	assert.Equal(t, []string{ids[2], ids[4]}, runIDs(from))
	none, err := f.Store.ListRuns(ctx, tenant, "empty", runs.RunQuery{})
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testLargeRun(t *testing.T, f Fixture) {
	ctx := context.Background()
	tenant, ws := unique("t"), ids.WorkspaceID("app")
	r := newRun(tenant, ws, time.Now().UTC())
	res := &tfresult.Result{Op: tfresult.Plan, HasChanges: true}
	for i := range 200 {
		// Multi-byte runes make chunk boundaries land inside UTF-8 sequences.
		res.Diagnostics = append(res.Diagnostics, tfresult.Diagnostic{Severity: "error", Summary: fmt.Sprintf("problème %d", i), Detail: strings.Repeat("é€", 300)})
	}
	r.PlanResult = res
	require.NoError(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{r}}))
	got, err := f.Store.GetRun(ctx, tenant, r.ID)
	require.NoError(t, err)
	assert.Equal(t, res, got.PlanResult)

	// Beyond what an entity holds: refused whole, nothing half written.
	huge := newRun(tenant, ws, time.Now().UTC())
	huge.Message = strings.Repeat("m", 1<<20)
	assert.ErrorContains(t, f.Store.Commit(ctx, runs.Commit{Tenant: tenant, Workspace: ws, Runs: []runs.Run{huge}}), "limit")
	_, err = f.Store.GetRun(ctx, tenant, huge.ID)
	assert.ErrorIs(t, err, runs.ErrNotFound)
}

func testTenantIsolation(t *testing.T, f Fixture) {
	a, b := newEnv(t, f.Store), newEnv(t, f.Store)
	b.m = a.m // one server, two tenants
	a.workspace("shared-name", runs.Options{}, nil)
	b.workspace("shared-name", runs.Options{}, nil)
	a.agent("agent-a", 1, nil)
	b.agent("agent-b", 1, nil)
	run := a.enqueue("shared-name", runs.OpApply).Run

	ctx := context.Background()
	_, err := a.m.GetRun(ctx, b.tenant, run.ID)
	assert.ErrorIs(t, err, runs.ErrNotFound, "tenant B reads A's run")
	bRuns, err := a.m.ListRuns(ctx, b.tenant, "shared-name")
	require.NoError(t, err)
	assert.Empty(t, bRuns, "tenant B lists A's runs")
	_, err = a.m.Approve(ctx, b.tenant, run.ID, "mallory")
	assert.ErrorIs(t, err, runs.ErrNotFound)
	_, err = a.m.Cancel(ctx, runs.CancelRequest{Tenant: b.tenant, Run: run.ID, By: "mallory"})
	assert.ErrorIs(t, err, runs.ErrNotFound)

	// B's agent gets nothing from B's workspace of the same name, and
	// cannot name itself into tenant A.
	_, err = a.m.Claim(ctx, runs.ClaimRequest{Tenant: b.tenant, Workspace: "shared-name", Agent: "agent-b"})
	assert.ErrorIs(t, err, runs.ErrNothingToClaim)
	_, err = a.m.Claim(ctx, runs.ClaimRequest{Tenant: a.tenant, Workspace: "shared-name", Agent: "agent-b"})
	assert.ErrorIs(t, err, runs.ErrNotFound, "agent-b is not an agent of tenant A")
	_, err = a.m.ClaimNext(ctx, b.tenant, "agent-b")
	assert.ErrorIs(t, err, runs.ErrNothingToClaim)

	// Artifacts of another tenant or workspace are refused.
	ta, tb := string(a.tenant), string(b.tenant)
	for _, blob := range []string{tb + "/shared-name/x", ta + "/other/x", ta + "/shared-name/../../" + tb + "/x"} {
		_, err = a.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: a.tenant, Workspace: "shared-name", Operation: runs.OpApply, Bundle: Bundle(blob)})
		assert.ErrorIs(t, err, runs.ErrInvalid, blob)
	}
	_, err = a.m.Heartbeat(ctx, runs.Heartbeat{Tenant: unique("nobody"), Agent: "agent-x", Capacity: 1})
	assert.ErrorIs(t, err, runs.ErrNotFound, "an agent of an unknown tenant")

	claimed := a.claim("shared-name", "agent-a")
	assert.Equal(t, run.ID, claimed.ID)
	_, err = a.m.Report(ctx, runs.Report{Tenant: b.tenant, Run: run.ID, Agent: "agent-b", State: runs.Failed})
	assert.ErrorIs(t, err, runs.ErrNotFound)
	_, err = a.m.Report(ctx, runs.Report{Tenant: a.tenant, Run: run.ID, Agent: "agent-b", State: runs.Failed})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "another agent reports on A's run")
	_, err = a.m.Report(ctx, runs.Report{Tenant: a.tenant, Run: run.ID, Agent: "agent-a", State: runs.Planned,
		Result: &tfresult.Result{HasChanges: true}, Plan: Bundle(tb + "/shared-name/" + run.ID + "/workdir")})
	assert.ErrorIs(t, err, runs.ErrInvalid, "a plan stored under another tenant")
	stops, err := a.m.Heartbeat(ctx, runs.Heartbeat{Tenant: b.tenant, Agent: "agent-b", Capacity: 1, Running: []string{run.ID}})
	require.NoError(t, err)
	assert.Equal(t, []runs.Stop{{Run: run.ID, Reason: "unknown run"}}, stops)
	bLocks, err := a.m.ListLocks(ctx, b.tenant)
	require.NoError(t, err)
	assert.Empty(t, bLocks)
}

func testAgents(t *testing.T, f Fixture) {
	ctx := context.Background()
	tenant := unique("t")
	old := time.Now().UTC().Add(-time.Hour)
	a := runs.Agent{Tenant: tenant, ID: "a1", Capacity: 2, Labels: map[string]string{"env": "prod"}, RegisteredAt: old, LastHeartbeat: old}
	require.NoError(t, f.Store.PutAgent(ctx, a))
	require.NoError(t, f.Store.PutAgent(ctx, runs.Agent{Tenant: tenant, ID: "a2", Capacity: 1, LastHeartbeat: time.Now().UTC()}))
	got, err := f.Store.GetAgent(ctx, tenant, "a1")
	require.NoError(t, err)
	assert.Equal(t, a.Labels, got.Labels)
	assert.True(t, a.LastHeartbeat.Equal(got.LastHeartbeat))

	list, err := f.Store.ListAgents(ctx, tenant)
	require.NoError(t, err)
	assert.Len(t, list, 2)
	silent, err := f.Store.ListSilentAgents(ctx, time.Now().UTC().Add(-time.Minute))
	require.NoError(t, err)
	var mine []string
	for _, s := range silent {
		if s.Tenant == tenant {
			mine = append(mine, s.ID)
		}
	}
	assert.Equal(t, []string{"a1"}, mine)

	// A conditional put loses to a heartbeat that came in between.
	stale := got
	require.NoError(t, f.Store.PutAgent(ctx, runs.Agent{Tenant: tenant, ID: "a1", Capacity: 2, LastHeartbeat: time.Now().UTC()}))
	stale.Silent = true
	assert.ErrorIs(t, f.Store.PutAgent(ctx, stale), runs.ErrConflict)
	_, err = f.Store.GetAgent(ctx, unique("t"), "a1")
	assert.ErrorIs(t, err, runs.ErrNotFound)
}
