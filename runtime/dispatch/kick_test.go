package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
)

// countingStore counts the reads made through it.
type countingStore struct {
	runs.Store
	reads atomic.Int64
}

func (s *countingStore) GetTenant(ctx context.Context, id ids.TenantID) (runs.Tenant, error) {
	s.reads.Add(1)
	return s.Store.GetTenant(ctx, id)
}

func (s *countingStore) ListTenants(ctx context.Context) ([]runs.Tenant, error) {
	s.reads.Add(1)
	return s.Store.ListTenants(ctx)
}

func (s *countingStore) GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (runs.Workspace, error) {
	s.reads.Add(1)
	return s.Store.GetWorkspace(ctx, tenant, name)
}

func (s *countingStore) ListWorkspaces(ctx context.Context, tenant ids.TenantID) ([]runs.Workspace, error) {
	s.reads.Add(1)
	return s.Store.ListWorkspaces(ctx, tenant)
}

func (s *countingStore) GetRun(ctx context.Context, tenant ids.TenantID, id string) (runs.Run, error) {
	s.reads.Add(1)
	return s.Store.GetRun(ctx, tenant, id)
}

func (s *countingStore) ListRuns(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, q runs.RunQuery) ([]runs.Run, error) {
	s.reads.Add(1)
	return s.Store.ListRuns(ctx, tenant, workspace, q)
}

func (s *countingStore) GetLock(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (runs.Lock, error) {
	s.reads.Add(1)
	return s.Store.GetLock(ctx, tenant, workspace)
}

func (s *countingStore) ListLocks(ctx context.Context, q runs.LockQuery) ([]runs.Lock, error) {
	s.reads.Add(1)
	return s.Store.ListLocks(ctx, q)
}

func (s *countingStore) GetAgent(ctx context.Context, tenant ids.TenantID, id string) (runs.Agent, error) {
	s.reads.Add(1)
	return s.Store.GetAgent(ctx, tenant, id)
}

func (s *countingStore) ListAgents(ctx context.Context, tenant ids.TenantID) ([]runs.Agent, error) {
	s.reads.Add(1)
	return s.Store.ListAgents(ctx, tenant)
}

// grants changes the labels the registration of one agent grants.
type grants struct {
	Keys
	id     string
	labels map[string]string
}

func (g grants) Lookup(clientID string) (registry.Connector, bool) {
	c, ok := g.Keys.Lookup(clientID)
	if clientID == g.id {
		c.Labels = g.labels
	}
	return c, ok
}

// kicked takes the dispatch passes queued so far.
func (e *env) kicked() int {
	n := 0
	for {
		select {
		case <-e.d.kicks:
			n++
		default:
			return n
		}
	}
}

// hb delivers a heartbeat of tenant-a's agent with capacity and the
// runs it executes.
func (e *env) hb(agent string, hb runproto.Heartbeat) {
	e.t.Helper()
	hb.Version, hb.TerraformVersion, hb.ProviderSources = "test", cmp.Or(hb.TerraformVersion, "1.11.4"), true
	require.NoError(e.t, e.from("tenant-a", agent, &hb))
}

// TestSteadyHeartbeatsDoNotDispatch: an idle agent heartbeating what it
// said before changes nothing a dispatch pass could use, so it queues
// none; a heartbeat that offers something new does.
func TestSteadyHeartbeatsDoNotDispatch(t *testing.T) {
	e := newEnv(t)
	e.hb("a1", runproto.Heartbeat{Capacity: 2})
	e.hb("a2", runproto.Heartbeat{Capacity: 1, Labels: map[string]string{"env": "prod"}})
	assert.Equal(t, 2, e.kicked(), "an agent's first heartbeat dispatches")

	for range 10 {
		e.hb("a1", runproto.Heartbeat{Capacity: 2})
		e.hb("a2", runproto.Heartbeat{Capacity: 1, Labels: map[string]string{"env": "prod"}})
		e.advance(runproto.HeartbeatInterval)
	}
	assert.Zero(t, e.kicked(), "steady heartbeats dispatched")

	for _, c := range []struct {
		name  string
		agent string
		hb    runproto.Heartbeat
		kicks bool
	}{
		{"a run started: less room", "a1", runproto.Heartbeat{Capacity: 2, Running: []string{"r1"}}, true},
		{"same again", "a1", runproto.Heartbeat{Capacity: 2, Running: []string{"r1"}}, false},
		{"full", "a1", runproto.Heartbeat{Capacity: 2, Running: []string{"r1", "r2"}}, false},
		{"room again", "a1", runproto.Heartbeat{Capacity: 2, Running: []string{"r2"}}, true},
		{"capacity", "a1", runproto.Heartbeat{Capacity: 3, Running: []string{"r2"}}, true},
		{"draining", "a1", runproto.Heartbeat{Capacity: 3, Draining: true}, false},
		{"back from draining", "a1", runproto.Heartbeat{Capacity: 3}, true},
		{"labels", "a2", runproto.Heartbeat{Capacity: 1}, true},
		{"terraform", "a2", runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.12.0"}, true},
		{"steady", "a2", runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.12.0"}, false},
	} {
		e.hb(c.agent, c.hb)
		if c.kicks {
			assert.Equal(t, 1, e.kicked(), c.name)
		} else {
			assert.Zero(t, e.kicked(), c.name)
		}
	}

	// Its registration grants another label.
	e.d.cfg.Keys = grants{Keys: e.d.cfg.Keys, id: "tenant-a/a2", labels: map[string]string{"env": "prod", "tier": "gold"}}
	e.hb("a2", runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.12.0"})
	assert.Equal(t, 1, e.kicked(), "granted labels")
	e.hb("a2", runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.12.0"})
	assert.Zero(t, e.kicked())

	// Back after being offline (SilentAfter is a minute here).
	e.advance(2 * time.Minute)
	e.hb("a2", runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.12.0"})
	assert.Equal(t, 1, e.kicked(), "an agent back online dispatches")
	e.hb("a2", runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.12.0"})
	assert.Zero(t, e.kicked())

	// Each tenant's agents are their own.
	require.NoError(t, e.from("tenant-b", "b1", &runproto.Heartbeat{Capacity: 2, TerraformVersion: "1.11.4"}))
	assert.Equal(t, 1, e.kicked())
}

// workspaces creates n more workspaces of tenant-a, ws00 on.
func (e *env) workspaces(n int) []ids.WorkspaceID {
	e.t.Helper()
	var out []ids.WorkspaceID
	for i := range n {
		w, err := e.m.CreateWorkspace(context.Background(), runs.Workspace{Tenant: "tenant-a", Name: ids.WorkspaceID(fmt.Sprintf("ws%02d", i))})
		require.NoError(e.t, err)
		out = append(out, w.Name)
	}
	return out
}

// enqueueIn queues an apply in tenant-a's workspace.
func (e *env) enqueueIn(w ids.WorkspaceID) runs.Run {
	e.t.Helper()
	id := runs.NewRunID(e.clock())
	q, err := e.m.Enqueue(context.Background(), runs.EnqueueRequest{Tenant: "tenant-a", Workspace: w, ID: id, Operation: runs.OpApply, CreatedBy: "alice",
		Bundle: &runs.Artifact{Container: "boteruns", Blob: "tenant-a/" + string(w) + "/" + id + "/bundle-1.tar.gz", Size: 3, SHA256: hash([]byte("abc"))}})
	require.NoError(e.t, err)
	return q.Run
}

// takeAssign returns the one assignment sent since the last take.
func (e *env) takeAssign(t *testing.T) (sent, *runproto.Assign) {
	t.Helper()
	msgs := e.sender.take()
	require.Len(t, msgs, 1)
	a, ok := msgs[0].msg.(*runproto.Assign)
	require.True(t, ok, "%T", msgs[0].msg)
	return msgs[0], a
}

// reads returns the store reads f makes.
func (e *env) reads(f func()) int64 {
	before := e.store.reads.Load()
	f()
	return e.store.reads.Load() - before
}

// TestOfflineAgentsAreForgotten: the tick forgets what an agent offered
// once it is offline, so the views do not grow with every agent id ever
// seen; an agent back after that still kicks a pass.
func TestOfflineAgentsAreForgotten(t *testing.T) {
	e := newEnv(t)
	e.hb("a1", runproto.Heartbeat{Capacity: 1})
	e.hb("a2", runproto.Heartbeat{Capacity: 1})
	e.advance(2 * time.Minute) // SilentAfter is a minute here
	e.hb("a2", runproto.Heartbeat{Capacity: 1})
	e.kicked()

	e.d.gcAgents()
	assert.Equal(t, []string{"tenant-a/a2"}, slices.Collect(maps.Keys(e.d.agents)), "only the online agent is kept")

	e.hb("a1", runproto.Heartbeat{Capacity: 1})
	assert.Equal(t, 1, e.kicked(), "an agent back online dispatches")
}

// TestTenantPassReadsOnlyWhatCanStart: a dispatch pass over a tenant
// reads its agents and locks once, then two rows of a workspace with
// nothing to start, none of one an agent is busy in, and nothing more when
// no agent can take a run; it still starts what waits.
func TestTenantPassReadsOnlyWhatCanStart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const m = 20
	wss := e.workspaces(m)
	e.hb("a1", runproto.Heartbeat{Capacity: 2})
	e.enqueueIn(wss[0])
	e.d.dispatchTenant(ctx, "tenant-a")
	_, a := e.takeAssign(t)
	e.hb("a1", runproto.Heartbeat{Capacity: 2, Running: []string{a.RunID}})

	r := e.enqueueIn(wss[1])
	reads := e.reads(func() { e.d.dispatchTenant(ctx, "tenant-a") })
	to, a := e.takeAssign(t)
	assert.Equal(t, r.ID, a.RunID)
	assert.Equal(t, "a1", to.agent)
	// ListAgents, ListLocks, ListWorkspaces; Startable of the m+1
	// workspaces but the busy one; the dispatch and assignment of one.
	t.Logf("a pass over %d workspaces with one run to start read %d rows", m+1, reads)
	assert.LessOrEqual(t, reads, int64(3+2*m+12))

	reads = e.reads(func() { e.d.dispatchTenant(ctx, "tenant-a") })
	assert.Equal(t, int64(2), reads, "no agent has room: only agents and locks are read")
	assert.Empty(t, e.sender.take())

	// The run is released (the agent gave it back): it starts again.
	e.hb("a1", runproto.Heartbeat{Capacity: 2, Running: []string{a.RunID}})
	claimed := e.run(r.ID)
	_, err := e.m.GiveBack(ctx, runs.GiveBackRequest{Tenant: "tenant-a", Run: r.ID, Agent: "a1", Claim: claimed.Claim(), Reason: "busy"})
	require.NoError(t, err)
	e.d.dispatchTenant(ctx, "tenant-a")
	_, again := e.takeAssign(t)
	assert.Equal(t, r.ID, again.RunID)
}

// passBefore is the tenant pass as it was before passes read agents and
// locks once and skipped what cannot start: every workspace dispatched.
func (d *Dispatcher) passBefore(ctx context.Context, tenant ids.TenantID) {
	wss, err := d.m.ListWorkspaces(ctx, tenant)
	if err != nil {
		panic(err)
	}
	if _, err := d.m.ListAgents(ctx, tenant); err != nil {
		panic(err)
	}
	for _, w := range wss {
		d.DispatchWorkspace(ctx, tenant, w.Name)
	}
}

// BenchmarkHeartbeat reports the store reads per heartbeat of an idle
// agent (reads/heartbeat) in a tenant of 24 workspaces, one busy: before,
// every heartbeat with room queued a tenant pass; now a steady one queues
// none. And the reads of one tenant pass (reads/pass), as when a run ends.
//
//	go test -run '^$' -bench Heartbeat ./runtime/dispatch/
func BenchmarkHeartbeat(b *testing.B) {
	ctx := context.Background()
	setup := func(b *testing.B) *env {
		e := newEnv(b)
		wss := e.workspaces(23)
		e.hb("a1", runproto.Heartbeat{Capacity: 2})
		e.hb("a2", runproto.Heartbeat{Capacity: 1, Labels: map[string]string{"env": "prod"}})
		e.enqueueIn(wss[0])
		e.d.dispatchTenant(ctx, "tenant-a")
		msgs := e.sender.take()
		require.Len(b, msgs, 1)
		e.kicked()
		return e
	}
	for _, c := range []struct {
		name string
		hb   func(e *env) // one heartbeat of an idle agent, with the pass it causes
		pass func(e *env)
	}{
		{"before", func(e *env) {
			e.hb("a2", runproto.Heartbeat{Capacity: 1, Labels: map[string]string{"env": "prod"}})
			e.kicked()
			e.d.passBefore(ctx, "tenant-a")
		}, func(e *env) { e.d.passBefore(ctx, "tenant-a") }},
		{"after", func(e *env) {
			e.hb("a2", runproto.Heartbeat{Capacity: 1, Labels: map[string]string{"env": "prod"}})
			for range e.kicked() {
				e.d.dispatchTenant(ctx, "tenant-a")
			}
		}, func(e *env) { e.d.dispatchTenant(ctx, "tenant-a") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := setup(b)
			var hbReads, passReads int64
			n := 0
			for b.Loop() {
				hbReads += e.reads(func() { c.hb(e) })
				passReads += e.reads(func() { c.pass(e) })
				n++
			}
			b.ReportMetric(float64(hbReads)/float64(n), "reads/heartbeat")
			b.ReportMetric(float64(passReads)/float64(n), "reads/pass")
		})
	}
}

// TestABusyTenantDoesNotDelayAnother: while the assignment of a tenant's
// run hangs (a slow gateway, a slow store), another tenant's run is
// claimed and sent.
func TestABusyTenantDoesNotDelayAnother(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.d.cfg.SweepEvery = -1
	_, err := e.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "tenant-b", Name: "prod"})
	require.NoError(t, err)
	e.hb("a1", runproto.Heartbeat{Capacity: 1})
	require.NoError(t, e.from("tenant-b", "b1", &runproto.Heartbeat{Capacity: 1, TerraformVersion: "1.11.4", ProviderSources: true}))

	entered, release := make(chan struct{}, 1), make(chan struct{})
	var released sync.Once
	releaseAll := func() { released.Do(func() { close(release) }) }
	e.sender.mu.Lock()
	e.sender.hold = func(tenant string) {
		if tenant == "tenant-a" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
	}
	e.sender.mu.Unlock()

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.d.Run(runCtx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	defer releaseAll()

	ra := e.enqueue(runs.OpApply)
	select {
	case <-entered: // tenant-a's assignment hangs in the gateway
	case <-time.After(30 * time.Second):
		t.Fatal("tenant-a's run was not assigned")
	}
	id := runs.NewRunID(e.clock())
	_, err = e.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "tenant-b", Workspace: "prod", ID: id, Operation: runs.OpApply, CreatedBy: "alice",
		Bundle: &runs.Artifact{Container: "boteruns", Blob: "tenant-b/prod/" + id + "/bundle-1.tar.gz", Size: 3, SHA256: hash([]byte("abc"))}})
	require.NoError(t, err)
	var got []sent
	require.Eventually(t, func() bool {
		got = append(got, e.sender.take()...)
		return len(got) > 0
	}, 30*time.Second, 10*time.Millisecond, "tenant-b's run waited for tenant-a's")
	require.Len(t, got, 1)
	assert.Equal(t, "tenant-b", got[0].tenant)
	assert.Equal(t, "b1", got[0].agent)
	assert.Equal(t, id, got[0].msg.(*runproto.Assign).RunID)

	releaseAll()
	require.Eventually(t, func() bool {
		for _, m := range e.sender.take() {
			if a, ok := m.msg.(*runproto.Assign); ok && a.RunID == ra.ID && m.agent == "a1" {
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond)
}
