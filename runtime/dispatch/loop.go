package dispatch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// Run dispatches until ctx ends: queued kicks, the tick, the sweeps.
// Tenants are dispatched concurrently (at most maxPasses at a time), each
// by one pass at a time, so a busy tenant never delays another's runs,
// and no agent is given more runs than it has room for by passes racing
// in one replica. Run returns once every pass ended.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.cfg.SweepEvery > 0 {
		go d.m.Sweep(ctx, d.cfg.SweepEvery)
	}
	var passes sync.WaitGroup
	defer passes.Wait()
	sem := make(chan struct{}, maxPasses)
	schedule := func(k kick) {
		if d.enqueue(k) {
			passes.Go(func() { d.passes(ctx, k.tenant, sem) })
		}
	}
	passes.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case o := <-d.outbox:
				d.send(ctx, o.tenant, o.agent, o.msg)
			}
		}
	})
	tick := time.NewTicker(d.cfg.Tick)
	defer tick.Stop()
	d.tick(ctx, schedule)
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-d.kicks:
			schedule(k)
		case <-tick.C:
			d.tick(ctx, schedule)
			d.gcCursors()
			d.gcAgents()
		}
	}
}

// maxPasses bounds the tenants dispatched at once.
const maxPasses = 4

// enqueue adds k to its tenant's pending kicks, once, and reports
// whether the tenant has no pass running (the caller starts one).
func (d *Dispatcher) enqueue(k kick) (start bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q, running := d.pending[k.tenant]
	if !slices.Contains(q, k) {
		q = append(q, k)
	}
	d.pending[k.tenant] = q
	return !running
}

// passes dispatches tenant's pending kicks until there are none.
func (d *Dispatcher) passes(ctx context.Context, tenant ids.TenantID, sem chan struct{}) {
	for {
		d.mu.Lock()
		pending := d.pending[tenant]
		if len(pending) == 0 || ctx.Err() != nil {
			delete(d.pending, tenant)
			d.mu.Unlock()
			return
		}
		d.pending[tenant] = pending[:0:0]
		d.mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		d.dispatch(ctx, pending)
		<-sem
	}
}

// dispatch handles the kicks of one tenant: a pass over the tenant
// covers its workspaces.
func (d *Dispatcher) dispatch(ctx context.Context, kicks []kick) {
	if i := slices.IndexFunc(kicks, func(k kick) bool { return k.workspace == "" }); i >= 0 {
		d.dispatchTenant(ctx, kicks[i].tenant)
		return
	}
	for _, k := range kicks {
		d.DispatchWorkspace(ctx, k.tenant, k.workspace)
	}
}

func (d *Dispatcher) tick(ctx context.Context, schedule func(kick)) {
	tenants, err := d.cfg.Tenants(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("cannot list tenants", "err", err)
		}
		return
	}
	for _, t := range tenants {
		schedule(kick{tenant: t.ID})
	}
}

// dispatchTenant dispatches every workspace of tenant that has a run to
// start. It reads the tenant's agents and locks once and skips the tenant
// when none of its agents can take a run (online, not draining, below
// capacity), a workspace whose run an agent executes (busy until that run
// ends, which kicks again), and one with nothing to start
// (runs.Manager.Startable, two reads where a dispatch reads six).
func (d *Dispatcher) dispatchTenant(ctx context.Context, tenant ids.TenantID) {
	agents, err := d.m.ListAgents(ctx, tenant)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("cannot list agents", "tenant", tenant, "err", err)
		}
		return
	}
	// Most ticks find nothing to do: skip a tenant none of whose agents
	// is online before reading anything else.
	if !slices.ContainsFunc(agents, d.m.Online) {
		return
	}
	locks, err := d.m.ListLocks(ctx, tenant)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("cannot list locks", "tenant", tenant, "err", err)
		}
		return
	}
	held := map[string]int{}
	busy := map[ids.WorkspaceID]bool{}
	for _, l := range locks {
		if l.Agent != "" {
			held[l.Agent]++
			busy[l.Workspace] = true
		}
	}
	if !slices.ContainsFunc(agents, func(a runs.Agent) bool { return d.m.Online(a) && !a.Draining && held[a.ID] < a.Capacity }) {
		return
	}
	wss, err := d.m.ListWorkspaces(ctx, tenant)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("cannot list workspaces", "tenant", tenant, "err", err)
		}
		return
	}
	for _, w := range wss {
		if busy[w.Name] {
			continue
		}
		if ok, err := d.m.Startable(ctx, tenant, w.Name); err != nil || ok {
			d.DispatchWorkspace(ctx, tenant, w.Name) // an error here is Dispatch's to report
		}
	}
}

// DispatchWorkspace starts what can start in a workspace now and returns
// the runs it assigned.
func (d *Dispatcher) DispatchWorkspace(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) []runs.Run {
	var started []runs.Run
	for ctx.Err() == nil {
		r, err := d.m.Dispatch(ctx, tenant, workspace)
		switch {
		case errors.Is(err, runs.ErrNothingToClaim), errors.Is(err, runs.ErrAgentUnavailable):
			return started
		case err != nil:
			d.log.Error("cannot dispatch", "tenant", tenant, "workspace", workspace, "err", err)
			return started
		}
		d.assign(ctx, r)
		started = append(started, r)
	}
	return started
}
