// Package storetest is the contract suite every runs.Store passes: the
// in-memory store in its unit tests, the Table Storage store on Azurite in
// the integration module. It checks the storage guarantees the lifecycle
// relies on (conditional writes, atomic commits, tenant scoping, order,
// large values) and then drives the lifecycle itself through runs.Manager
// on the store: queueing, a claim race between two managers (two
// ops server replicas), silent agents, timeouts, cancel, auto-apply and a
// restart onto a new store instance over the same storage.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

// Fixture is a fresh, empty store and a way to open it again: Reopen
// returns a new instance over the same storage (a restarted ops server).
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
func unique(prefix string) ids.TenantID {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return ids.TenantID(prefix + hex.EncodeToString(b[:]))
}

// Bundle returns an artifact reference to name for tests.
func Bundle(name string) *runs.Artifact {
	return &runs.Artifact{Container: "boteruns", Blob: name, Size: 10, SHA256: strings.Repeat("ab", 32)}
}

type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *Clock
	m      *runs.Manager
	tenant ids.TenantID
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

func (e *env) workspace(name ids.WorkspaceID, opts runs.Options, labels map[string]string) {
	_, err := e.m.CreateWorkspace(e.ctx, runs.Workspace{Tenant: e.tenant, Name: name, Options: opts, AgentLabels: labels})
	require.NoError(e.t, err)
}

func (e *env) agent(id string, capacity int, labels map[string]string) {
	_, err := e.m.Heartbeat(e.ctx, runs.Heartbeat{Tenant: e.tenant, Agent: id, Capacity: capacity, Labels: labels})
	require.NoError(e.t, err)
}

func (e *env) enqueue(ws ids.WorkspaceID, op runs.Operation) runs.Enqueued {
	q, err := e.m.Enqueue(e.ctx, runs.EnqueueRequest{Tenant: e.tenant, Workspace: ws, Operation: op, Bundle: Bundle(string(e.tenant) + "/" + string(ws) + "/bundle"), CreatedBy: "alice"})
	require.NoError(e.t, err)
	return q
}

func (e *env) claim(ws ids.WorkspaceID, agent string) runs.Run {
	r, err := e.m.Claim(e.ctx, runs.ClaimRequest{Tenant: e.tenant, Workspace: ws, Agent: agent})
	require.NoError(e.t, err)
	return r
}

func (e *env) report(run, agent string, to runs.State, changes bool) runs.Run {
	rep := runs.Report{Tenant: e.tenant, Run: run, Agent: agent, State: to, Result: &tfresult.Result{HasChanges: changes}}
	if to == runs.Planned {
		r, err := e.m.GetRun(e.ctx, e.tenant, run)
		require.NoError(e.t, err)
		rep.Plan = Bundle(string(e.tenant) + "/" + string(r.Workspace) + "/" + run + "/workdir")
	}
	r, err := e.m.Report(e.ctx, rep)
	require.NoError(e.t, err)
	return r
}

// lock returns the workspace's lock as the tenant's lock list shows it.
func (e *env) lock(ws ids.WorkspaceID) runs.Lock {
	locks, err := e.m.ListLocks(e.ctx, e.tenant)
	require.NoError(e.t, err)
	for _, l := range locks {
		if l.Workspace == ws {
			return l
		}
	}
	return runs.Lock{Tenant: e.tenant, Workspace: ws}
}
