// Package storetest is the contract suite every runs.Store passes: the
// in-memory store in its unit tests, the Table Storage store on Azurite in
// the integration module. It checks the storage guarantees the lifecycle
// relies on (conditional writes, atomic commits, tenant scoping, order,
// large values) and then drives the lifecycle itself through runs.Manager
// on the store: queueing, a claim race between two managers (two
// relayserver replicas), silent agents, timeouts, cancel, auto-apply and a
// restart onto a new store instance over the same storage.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfrun"
)

// Fixture is a fresh, empty store and a way to open it again: Reopen
// returns a new instance over the same storage (a restarted relayserver).
type Fixture struct {
	Store  runs.Store
	Reopen func(t *testing.T) runs.Store
}

// Factory opens a fresh fixture; Run calls it once per test.
type Factory func(t *testing.T) Fixture

// Run runs the whole contract suite.
func Run(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f Fixture)
	}{
		{"Tenants", testTenants},
		{"Workspaces", testWorkspaces},
		{"CommitIsAtomicAndConditional", testCommit},
		{"RunsListOldestFirstAndFilter", testListRuns},
		{"LargeRunRoundTrips", testLargeRun},
		{"TenantIsolation", testTenantIsolation},
		{"Agents", testAgents},
		{"Lifecycle", testLifecycle},
		{"RunsQueueBehindTheActiveOne", testQueue},
		{"ConcurrentClaimsExactlyOneWins", testClaimRace},
		{"DispatchPicksTheLeastLoadedAgent", testDispatch},
		{"SilentAgentGivesBackOrNeedsAttention", testSilentAgent},
		{"Timeouts", testTimeouts},
		{"Cancel", testCancel},
		{"AutoApplyNoChangesAndDestroy", testAutoApply},
		{"RestartLosesNothing", testRestart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, factory(t)) })
	}
}

// Clock is a settable clock for Managers under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at the current time.
func NewClock() *Clock { return &Clock{now: time.Now().UTC().Truncate(time.Millisecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testLogger logs into the test's output, shown when it fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// unique returns an id no other test uses, so suites may share storage.
func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Bundle returns an artifact reference to name for tests.
func Bundle(name string) *envelope.Claim {
	return &envelope.Claim{Container: "boteruns", Blob: name, Size: 10, SHA256: strings.Repeat("ab", 32)}
}

type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *Clock
	m      *runs.Manager
	tenant string
}

func newEnv(t *testing.T, store runs.Store) *env {
	clock := NewClock()
	m, err := runs.New(runs.Config{Store: store, Roster: runs.Unrestricted, Now: clock.Now, SilentAfter: time.Minute, Logger: testLogger(t)})
	require.NoError(t, err)
	e := &env{t: t, ctx: context.Background(), clock: clock, m: m, tenant: unique("t")}
	_, err = m.CreateTenant(e.ctx, runs.Tenant{ID: e.tenant})
	require.NoError(t, err)
	return e
}

func (e *env) workspace(name string, opts runs.Options, labels map[string]string) {
	_, err := e.m.CreateWorkspace(e.ctx, runs.Workspace{Tenant: e.tenant, Name: name, Options: opts, AgentLabels: labels})
	require.NoError(e.t, err)
}

func (e *env) agent(id string, capacity int, labels map[string]string) {
	_, err := e.m.Heartbeat(e.ctx, runs.Heartbeat{Tenant: e.tenant, Agent: id, Capacity: capacity, Labels: labels})
	require.NoError(e.t, err)
}

func (e *env) enqueue(ws string, op runs.Operation) runs.Enqueued {
	q, err := e.m.Enqueue(e.ctx, runs.EnqueueRequest{Tenant: e.tenant, Workspace: ws, Operation: op, Bundle: Bundle(e.tenant + "/" + ws + "/bundle"), CreatedBy: "alice"})
	require.NoError(e.t, err)
	return q
}

func (e *env) claim(ws, agent string) runs.Run {
	r, err := e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: ws, Agent: agent})
	require.NoError(e.t, err)
	return r
}

func (e *env) report(run, agent string, to runs.State, changes bool) runs.Run {
	rep := runs.Report{Tenant: e.tenant, Run: run, Agent: agent, State: to, Result: &tfrun.Result{HasChanges: changes}}
	if to == runs.Planned {
		r, err := e.m.GetRun(e.ctx, e.tenant, run)
		require.NoError(e.t, err)
		rep.Plan = Bundle(e.tenant + "/" + r.Workspace + "/" + run + "/workdir")
	}
	r, err := e.m.Report(e.ctx, rep)
	require.NoError(e.t, err)
	return r
}

// lock returns the workspace's lock as the tenant's lock list shows it.
func (e *env) lock(ws string) runs.Lock {
	locks, err := e.m.ListLocks(e.ctx, e.tenant)
	require.NoError(e.t, err)
	for _, l := range locks {
		if l.Workspace == ws {
			return l
		}
	}
	return runs.Lock{Tenant: e.tenant, Workspace: ws}
}

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
	assert.Contains(t, tenantIDs(all), id)
	for _, bad := range []string{"", "a|b", "a/b", "-x", strings.Repeat("x", 200)} {
		assert.Error(t, f.Store.CreateTenant(ctx, runs.Tenant{ID: bad}), "tenant id %q", bad)
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
	assert.Equal(t, "dev", list[0].Name)
	assert.Equal(t, "production", list[1].Description)

	_, err = f.Store.GetWorkspace(ctx, tenant, "staging")
	assert.ErrorIs(t, err, runs.ErrNotFound)
}

func newRun(tenant, ws string, at time.Time) runs.Run {
	return runs.Run{
		ID: runs.NewRunID(at), Tenant: tenant, Workspace: ws, Operation: runs.OpApply, State: runs.Queued,
		CreatedAt: at, UpdatedAt: at, Bundle: Bundle("b"),
		History: []runs.Transition{{To: runs.Queued, At: at}},
	}
}

func testCommit(t *testing.T, f Fixture) {
	ctx := context.Background()
	tenant, ws := unique("t"), "app"
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
	return pluck(ts, func(t runs.Tenant) string { return t.ID })
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
	tenant, ws := unique("t"), "app"
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
	tenant, ws := unique("t"), "app"
	r := newRun(tenant, ws, time.Now().UTC())
	res := &tfrun.Result{Op: tfrun.Plan, HasChanges: true}
	for i := range 200 {
		// Multi-byte runes make chunk boundaries land inside UTF-8 sequences.
		res.Diagnostics = append(res.Diagnostics, tfrun.Diagnostic{Severity: "error", Summary: fmt.Sprintf("problème %d", i), Detail: strings.Repeat("é€", 300)})
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
	for _, blob := range []string{b.tenant + "/shared-name/x", a.tenant + "/other/x", a.tenant + "/shared-name/../../" + b.tenant + "/x"} {
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
		Result: &tfrun.Result{HasChanges: true}, Plan: Bundle(b.tenant + "/shared-name/" + run.ID + "/workdir")})
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

func testLifecycle(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{}, map[string]string{"env": "prod"})
	q := e.enqueue("app", runs.OpApply)
	assert.Equal(t, runs.Queued, q.Run.State)
	assert.Contains(t, q.Waiting, "no agent of tenant")

	e.agent("dev-agent", 1, map[string]string{"env": "dev"})
	w, err := e.m.Waiting(e.ctx, q.Run)
	require.NoError(t, err)
	assert.Contains(t, w, "env=prod")
	_, err = e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: "app", Agent: "dev-agent"})
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)

	e.agent("a1", 1, map[string]string{"env": "prod"})
	e.agent("a2", 1, map[string]string{"env": "prod", "zone": "b"})
	w, err = e.m.Waiting(e.ctx, q.Run)
	require.NoError(t, err)
	assert.Empty(t, w)

	r := e.claim("app", "a1")
	assert.Equal(t, runs.Planning, r.State)
	assert.Equal(t, tfrun.Plan, r.TerraformOp())
	assert.Equal(t, e.clock.Now().Add(runs.DefaultPlanTimeout), r.Deadline)
	l := e.lock("app")
	assert.Equal(t, r.ID, l.Run)
	assert.Equal(t, "a1", l.Agent)

	_, err = e.m.Approve(e.ctx, e.tenant, r.ID, "bob")
	assert.ErrorIs(t, err, runs.ErrIllegalTransition, "approve while planning")
	_, err = e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: r.ID, Agent: "a1", State: runs.Planned, Result: &tfrun.Result{HasChanges: true}})
	assert.ErrorIs(t, err, runs.ErrInvalid, "a plan with changes needs its artifact")

	r = e.report(r.ID, "a1", runs.Planned, true)
	assert.Equal(t, runs.Planned, r.State)
	assert.Empty(t, r.Agent)
	require.NotNil(t, r.Plan)
	_, err = e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: "app", Agent: "a2"})
	assert.ErrorIs(t, err, runs.ErrNothingToClaim, "a planned run waits for approval")

	r, err = e.m.Approve(e.ctx, e.tenant, r.ID, "bob")
	require.NoError(t, err)
	assert.Equal(t, runs.Approved, r.State)

	// The apply may land on another agent; it gets exactly the saved plan.
	applied := e.claim("app", "a2")
	assert.Equal(t, r.ID, applied.ID)
	assert.Equal(t, runs.Applying, applied.State)
	assert.Equal(t, tfrun.Apply, applied.TerraformOp())
	assert.Equal(t, r.Plan, applied.Plan)
	assert.Equal(t, "a1", applied.PlanAgent)
	assert.Equal(t, "a2", applied.ApplyAgent)

	done := e.report(r.ID, "a2", runs.Applied, true)
	assert.Equal(t, runs.Applied, done.State)
	assert.False(t, e.lock("app").Held())

	var path []runs.State
	for _, h := range done.History {
		path = append(path, h.To)
		assert.NotEmpty(t, h.Reason)
	}
	assert.Equal(t, []runs.State{runs.Queued, runs.Planning, runs.Planned, runs.Approved, runs.Applying, runs.Applied}, path)
	assert.Equal(t, "approved by bob", done.History[3].Reason)

	again, err := e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: r.ID, Agent: "a2", State: runs.Applied})
	require.NoError(t, err, "the gateway delivers a report twice")
	assert.Len(t, again.History, len(done.History), "recorded once")
	_, err = e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: r.ID, Agent: "a2", State: runs.Failed})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "a different report after the end")
	_, err = e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: r.ID, Agent: "a1", State: runs.Applied})
	assert.ErrorIs(t, err, runs.ErrNotAssigned, "the same report from another agent")
	_, err = e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: r.ID, By: "bob"})
	assert.ErrorIs(t, err, runs.ErrIllegalTransition, "cancel a finished run")
}

func testQueue(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{AutoApply: true}, nil)
	e.workspace("other", runs.Options{}, nil)
	e.agent("a1", 2, nil)
	first := e.enqueue("app", runs.OpApply)
	assert.Empty(t, first.Waiting)
	second := e.enqueue("app", runs.OpApply)
	assert.Contains(t, second.Waiting, "1 run(s) ahead")

	r := e.claim("app", "a1")
	assert.Equal(t, first.Run.ID, r.ID)
	w, err := e.m.Waiting(e.ctx, second.Run)
	require.NoError(t, err)
	assert.Contains(t, w, "busy with run "+first.Run.ID)
	third := e.enqueue("app", runs.OpDestroy)
	assert.Contains(t, third.Waiting, "1 run(s) ahead")

	// Capacity 2: the agent still takes another workspace's run; then it
	// is full, and a run of a free workspace says so.
	e.workspace("third", runs.Options{}, nil)
	_, err = e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: "app", Agent: "a1"})
	assert.ErrorIs(t, err, runs.ErrNothingToClaim)
	e.enqueue("other", runs.OpApply)
	o, err := e.m.ClaimNext(e.ctx, e.tenant, "a1")
	require.NoError(t, err)
	assert.Equal(t, "other", o.Workspace)
	_, err = e.m.ClaimNext(e.ctx, e.tenant, "a1")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable, "agent at capacity")
	full := e.enqueue("third", runs.OpApply)
	assert.Equal(t, "all 1 agent(s) that can run it are busy", full.Waiting)
	_, err = e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: full.Run.ID, By: "alice"})
	require.NoError(t, err)

	// auto-apply: planned goes straight to approved and the same agent applies.
	r = e.report(r.ID, "a1", runs.Planned, true)
	assert.Equal(t, runs.Approved, r.State)
	r = e.claim("app", "a1")
	assert.Equal(t, first.Run.ID, r.ID)
	e.report(r.ID, "a1", runs.Applied, true)

	next := e.claim("app", "a1")
	assert.Equal(t, second.Run.ID, next.ID, "runs start in creation order")
	e.report(next.ID, "a1", runs.Failed, false)
	last := e.claim("app", "a1")
	assert.Equal(t, third.Run.ID, last.ID)
	assert.Equal(t, tfrun.PlanDestroy, last.TerraformOp())
}

func testClaimRace(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{}, nil)
	const racers = 6
	for i := range racers {
		e.agent(fmt.Sprintf("a%d", i), 1, nil)
	}
	e.enqueue("app", runs.OpApply)
	e.enqueue("app", runs.OpApply)
	// Two managers over two store instances: two relayserver replicas.
	other, err := runs.New(runs.Config{Store: f.Reopen(t), Roster: runs.Unrestricted, Now: e.clock.Now, SilentAfter: time.Minute, Logger: testLogger(t)})
	require.NoError(t, err)
	managers := []*runs.Manager{e.m, other}

	wins, losses := race(racers, func(i int) (runs.Run, error) {
		return managers[i%2].Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: "app", Agent: fmt.Sprintf("a%d", i)})
	})
	require.Len(t, wins, 1, "exactly one claim wins")
	for _, err := range losses {
		assert.True(t, errors.Is(err, runs.ErrNothingToClaim) || errors.Is(err, runs.ErrConflict), "loser error: %v", err)
	}
	planning, err := e.m.ListRuns(e.ctx, e.tenant, "app", runs.Planning)
	require.NoError(t, err)
	require.Len(t, planning, 1)
	assert.Equal(t, wins[0].ID, planning[0].ID)
	assert.Equal(t, wins[0].Agent, e.lock("app").Agent)

	// ClaimNext over the tenant: two more workspaces with one run each;
	// the five idle agents race and exactly two win, one per workspace.
	e.workspace("web", runs.Options{}, nil)
	e.workspace("db", runs.Options{}, nil)
	e.enqueue("web", runs.OpApply)
	e.enqueue("db", runs.OpApply)
	var idle []string
	for i := range racers {
		if a := fmt.Sprintf("a%d", i); a != wins[0].Agent {
			idle = append(idle, a)
		}
	}
	wins, losses = race(len(idle), func(i int) (runs.Run, error) {
		return managers[i%2].ClaimNext(e.ctx, e.tenant, idle[i])
	})
	require.Len(t, wins, 2, "one claim per workspace")
	assert.ElementsMatch(t, []string{"web", "db"}, []string{wins[0].Workspace, wins[1].Workspace})
	for _, err := range losses {
		assert.ErrorIs(t, err, runs.ErrNothingToClaim)
	}
}

func testDispatch(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	prod := map[string]string{"env": "prod"}
	for _, ws := range []string{"a", "b", "c", "d"} {
		e.workspace(ws, runs.Options{}, prod)
	}
	e.agent("dev", 4, map[string]string{"env": "dev"})
	e.agent("big", 2, prod)
	e.agent("small", 1, prod)

	_, err := e.m.Dispatch(e.ctx, e.tenant, "a")
	assert.ErrorIs(t, err, runs.ErrNothingToClaim, "no run queued")

	e.enqueue("a", runs.OpApply)
	r, err := e.m.Dispatch(e.ctx, e.tenant, "a")
	require.NoError(t, err)
	assert.Contains(t, []string{"big", "small"}, r.Agent, "never the agent without the labels")
	first := r.Agent

	// The idle one goes first: the other agent now.
	e.enqueue("b", runs.OpApply)
	r, err = e.m.Dispatch(e.ctx, e.tenant, "b")
	require.NoError(t, err)
	assert.NotEqual(t, first, r.Agent)

	// small is full; big has room for one more (load 1/2 < 1/1).
	e.enqueue("c", runs.OpApply)
	r, err = e.m.Dispatch(e.ctx, e.tenant, "c")
	require.NoError(t, err)
	assert.Equal(t, "big", r.Agent)

	waiting := e.enqueue("d", runs.OpApply)
	assert.Equal(t, "all 2 agent(s) that can run it are busy", waiting.Waiting)
	_, err = e.m.Dispatch(e.ctx, e.tenant, "d")
	assert.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = e.m.Dispatch(e.ctx, unique("t"), "d")
	assert.ErrorIs(t, err, runs.ErrNotFound)
}

// race runs claim n times at once and sorts the outcomes.
func race(n int, claim func(i int) (runs.Run, error)) (wins []runs.Run, losses []error) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := claim(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				losses = append(losses, err)
				return
			}
			wins = append(wins, r)
		}()
	}
	close(start)
	wg.Wait()
	return wins, losses
}

// testSilentAgent: a lost agent's claims go back to the queue for a live
// agent (a plan whether or not Terraform started, an apply only if it did
// not), an apply whose Terraform started needs attention and keeps the
// workspace until its agent's result (or an operator) settles it.
func testSilentAgent(t *testing.T, f Fixture) {
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

func mine(tenant string, as []runs.Agent) []runs.Agent {
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

func testCancel(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{}, nil)
	e.agent("a1", 1, nil)
	active := e.enqueue("app", runs.OpApply).Run
	queued := e.enqueue("app", runs.OpApply).Run
	e.claim("app", "a1")

	// A queued run leaves the queue at once.
	r, err := e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: queued.ID, By: "bob", Reason: "superseded"})
	require.NoError(t, err)
	assert.Equal(t, runs.Cancelled, r.State)
	assert.Equal(t, "cancelled by bob: superseded", r.LastReason())

	// An executing run is asked to stop; the agent confirms.
	r, err = e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: active.ID, By: "bob"})
	require.NoError(t, err)
	assert.Equal(t, runs.Planning, r.State)
	assert.True(t, r.CancelRequested)
	assert.True(t, e.lock("app").Held())
	stops, err := e.m.Heartbeat(e.ctx, runs.Heartbeat{Tenant: e.tenant, Agent: "a1", Capacity: 1, Running: []string{active.ID}})
	require.NoError(t, err)
	assert.Equal(t, []runs.Stop{{Run: active.ID, Reason: "cancelled by bob"}}, stops)
	r = e.report(active.ID, "a1", runs.Cancelled, false)
	assert.Equal(t, runs.Cancelled, r.State)
	assert.Equal(t, "cancelled by bob; agent stopped planning", r.LastReason())
	assert.False(t, e.lock("app").Held())

	// A plan that finishes before the agent hears of the cancel ends the
	// run cancelled: it never waits for an approval nobody will give, and
	// never holds the workspace.
	raced := e.enqueue("app", runs.OpApply).Run
	e.claim("app", "a1")
	_, err = e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: raced.ID, By: "bob", Reason: "wrong branch"})
	require.NoError(t, err)
	r = e.report(raced.ID, "a1", runs.Planned, true)
	assert.Equal(t, runs.Cancelled, r.State)
	assert.Nil(t, r.Plan)
	assert.Equal(t, "cancelled by bob: wrong branch; the plan finished before the agent stopped", r.LastReason())
	assert.False(t, e.lock("app").Held())

	// Force ends an executing run without the agent.
	forced := e.enqueue("app", runs.OpApply).Run
	e.claim("app", "a1")
	r, err = e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: forced.ID, By: "bob", Force: true})
	require.NoError(t, err)
	assert.Equal(t, runs.Cancelled, r.State)
	assert.False(t, e.lock("app").Held())

	// A planned run is discarded.
	planned := e.enqueue("app", runs.OpApply).Run
	e.claim("app", "a1")
	e.report(planned.ID, "a1", runs.Planned, true)
	r, err = e.m.Cancel(e.ctx, runs.CancelRequest{Tenant: e.tenant, Run: planned.ID, By: "bob"})
	require.NoError(t, err)
	assert.Equal(t, runs.Cancelled, r.State)
	assert.False(t, e.lock("app").Held())
}

func testAutoApply(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("auto", runs.Options{AutoApply: true}, nil)
	e.agent("a1", 1, nil)

	e.enqueue("auto", runs.OpApply)
	r := e.claim("auto", "a1")
	r = e.report(r.ID, "a1", runs.Planned, false)
	assert.Equal(t, runs.NoChanges, r.State, "a plan without changes ends")
	assert.Nil(t, r.Plan)
	assert.False(t, e.lock("auto").Held())

	d := e.enqueue("auto", runs.OpDestroy).Run
	r = e.claim("auto", "a1")
	assert.Equal(t, d.ID, r.ID)
	assert.Equal(t, tfrun.PlanDestroy, r.TerraformOp())
	r = e.report(r.ID, "a1", runs.Planned, true)
	assert.Equal(t, runs.Approved, r.State)
	assert.Equal(t, "auto-apply", r.History[len(r.History)-1].By)
	dup := e.report(r.ID, "a1", runs.Planned, true)
	assert.Len(t, dup.History, len(r.History), "a redelivered plan report changes nothing")
	r = e.claim("auto", "a1")
	assert.Equal(t, tfrun.Apply, r.TerraformOp())
	r = e.report(r.ID, "a1", runs.Applied, true)
	assert.Equal(t, runs.OpDestroy, r.Operation)
	assert.Equal(t, runs.Applied, r.State)
}

func testRestart(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	e.workspace("app", runs.Options{}, nil)
	e.agent("a1", 1, nil)
	first := e.enqueue("app", runs.OpApply).Run
	second := e.enqueue("app", runs.OpApply).Run
	e.claim("app", "a1")
	e.report(first.ID, "a1", runs.Planned, true)

	// The relayserver restarts: a new store instance over the same storage.
	m, err := runs.New(runs.Config{Store: f.Reopen(t), Roster: runs.Unrestricted, Now: e.clock.Now, SilentAfter: time.Minute, Logger: testLogger(t)})
	require.NoError(t, err)
	e.m = m
	r, err := m.GetRun(e.ctx, e.tenant, first.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Planned, r.State)
	require.NotNil(t, r.Plan)
	wss, err := m.ListWorkspaces(e.ctx, e.tenant)
	require.NoError(t, err)
	assert.Len(t, wss, 1)
	agents, err := m.ListAgents(e.ctx, e.tenant)
	require.NoError(t, err)
	assert.Len(t, agents, 1)

	_, err = m.Approve(e.ctx, e.tenant, first.ID, "bob")
	require.NoError(t, err)
	e.claim("app", "a1")
	e.report(first.ID, "a1", runs.Applied, true)
	next := e.claim("app", "a1")
	assert.Equal(t, second.ID, next.ID)
	all, err := m.ListRuns(e.ctx, e.tenant, "")
	require.NoError(t, err)
	assert.Equal(t, []string{first.ID, second.ID}, runIDs(all))
}
