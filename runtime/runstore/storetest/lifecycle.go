package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

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
	assert.Equal(t, tfresult.Plan, r.TerraformOp())
	assert.Equal(t, e.clock.Now().Add(runs.DefaultPlanTimeout), r.Deadline)
	l := e.lock("app")
	assert.Equal(t, r.ID, l.Run)
	assert.Equal(t, "a1", l.Agent)

	_, err = e.m.Approve(e.ctx, e.tenant, r.ID, "bob")
	assert.ErrorIs(t, err, runs.ErrIllegalTransition, "approve while planning")
	_, err = e.m.Report(e.ctx, runs.Report{Tenant: e.tenant, Run: r.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true}})
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
	assert.Equal(t, tfresult.Apply, applied.TerraformOp())
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
	assert.Equal(t, ids.WorkspaceID("other"), o.Workspace)
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
	assert.Equal(t, tfresult.PlanDestroy, last.TerraformOp())
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
	// Two managers over two store instances: two ops server replicas.
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
	assert.ElementsMatch(t, []ids.WorkspaceID{"web", "db"}, []ids.WorkspaceID{wins[0].Workspace, wins[1].Workspace})
	for _, err := range losses {
		assert.ErrorIs(t, err, runs.ErrNothingToClaim)
	}
}

func testDispatch(t *testing.T, f Fixture) {
	e := newEnv(t, f.Store)
	prod := map[string]string{"env": "prod"}
	for _, ws := range []ids.WorkspaceID{"a", "b", "c", "d"} {
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
	assert.Equal(t, tfresult.PlanDestroy, r.TerraformOp())
	r = e.report(r.ID, "a1", runs.Planned, true)
	assert.Equal(t, runs.Approved, r.State)
	assert.Equal(t, "auto-apply", r.History[len(r.History)-1].By)
	dup := e.report(r.ID, "a1", runs.Planned, true)
	assert.Len(t, dup.History, len(r.History), "a redelivered plan report changes nothing")
	r = e.claim("auto", "a1")
	assert.Equal(t, tfresult.Apply, r.TerraformOp())
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

	// The ops server restarts: a new store instance over the same storage.
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
