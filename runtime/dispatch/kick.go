package dispatch

import (
	"maps"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
)

// agentView is what a Dispatcher last heard from an agent: what decides
// whether it can take a run.
type agentView struct {
	// labels are those it serves, granted those its registration grants
	// (registry.Connector.Labels): it serves both's intersection.
	labels, granted map[string]string
	capacity, free  int
	draining        bool
	terraform       string
	providerSources bool
	seen            time.Time
}

func viewOf(hb *runproto.Heartbeat, granted map[string]string, now time.Time) agentView {
	return agentView{labels: hb.Labels, granted: granted, capacity: hb.Capacity, free: hb.Capacity - len(hb.Running), draining: hb.Draining,
		terraform: hb.TerraformVersion, providerSources: hb.ProviderSources, seen: now}
}

// sameOffer reports whether v offers what old did: nothing a dispatch
// pass could use differently.
func (v agentView) sameOffer(old agentView) bool {
	return maps.Equal(v.labels, old.labels) && maps.Equal(v.granted, old.granted) && v.capacity == old.capacity && v.free == old.free && v.draining == old.draining &&
		v.terraform == old.terraform && v.providerSources == old.providerSources
}

// heartbeatKicks records an accepted heartbeat of tenant/agent and
// reports whether it calls for a dispatch pass over the tenant: the agent
// has room and is new to this Dispatcher, was offline before it, or
// offers something else than at its last heartbeat (labels served or
// granted, capacity, free slots, terraform, draining). A steady
// heartbeat changes nothing a pass could use: runs queued, approved or
// ended kick on their own (OnChange), and the tick catches what another
// replica changed.
func (d *Dispatcher) heartbeatKicks(tenant ids.TenantID, agent string, hb *runproto.Heartbeat) bool {
	key := registry.ClientID(string(tenant), agent)
	reg, _ := d.cfg.Keys.Lookup(key) // a refused agent's heartbeat does not get here
	v := viewOf(hb, maps.Clone(reg.Labels), d.cfg.Now())
	d.mu.Lock()
	old, known := d.agents[key]
	d.agents[key] = v
	d.mu.Unlock()
	if v.free <= 0 || v.draining {
		return false
	}
	return !known || !d.m.Online(runs.Agent{LastHeartbeat: old.seen}) || !v.sameOffer(old)
}

// gcAgents forgets the agents that are offline by now: forgotten or not,
// the next heartbeat of such an agent kicks a pass (heartbeatKicks), so
// only the map's size changes, which otherwise grows with every agent id
// ever seen (agents renamed, removed or made with fresh ids).
func (d *Dispatcher) gcAgents() {
	d.mu.Lock()
	defer d.mu.Unlock()
	maps.DeleteFunc(d.agents, func(_ string, v agentView) bool {
		return !d.m.Online(runs.Agent{LastHeartbeat: v.seen})
	})
}
