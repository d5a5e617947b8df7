package runs

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/botehq/platform/runtime/ids"
)

// ErrNotAgent: the connector is not registered as an agent of the tenant
// (unknown, disabled, or without the agent role).
var ErrNotAgent = errors.New("not a registered agent of the tenant")

// Roster says which connectors are deployment agents of a tenant and
// which labels each may serve: the connector registry
// (dispatch.RegistryRoster). The Manager asks it on every heartbeat and
// again on every claim, so an agent whose role is withdrawn or whose
// labels are narrowed gets no run from that moment, not only after its
// next heartbeat.
type Roster interface {
	// Agent returns the labels tenant/id is registered to serve, and
	// false if it is not an active registered agent of that tenant.
	Agent(tenant ids.TenantID, id string) (labels map[string]string, ok bool)
}

// Unrestricted is a Roster that admits every agent with the labels its
// heartbeat claims. It is for tests of the run lifecycle that have no
// registry; a server never uses it.
var Unrestricted Roster = unrestricted{}

type unrestricted struct{}

func (unrestricted) Agent(ids.TenantID, string) (map[string]string, bool) { return nil, true } // never asked: see admit

// ServedLabels are the labels an agent serves: the labels its heartbeat
// claims that its registration grants (same key, same value), or every
// registered label when the heartbeat claims none. dropped lists the
// claimed keys that were not granted, sorted.
func ServedLabels(registered, claimed map[string]string) (served map[string]string, dropped []string) {
	if len(claimed) == 0 {
		return maps.Clone(registered), nil
	}
	return intersect(registered, claimed)
}

// intersect returns the labels of b that a carries with the same value,
// and the keys of b that it drops, sorted.
func intersect(a, b map[string]string) (both map[string]string, dropped []string) {
	both = map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if v, ok := a[k]; ok && v == b[k] {
			both[k] = v
		} else {
			dropped = append(dropped, k)
		}
	}
	return both, dropped
}

// admit returns a as the roster allows it now, or false if it is no
// agent of its tenant. Its labels are those it served at its last
// heartbeat that its registration still grants.
func (m *Manager) admit(a Agent) (Agent, bool) {
	if _, open := m.roster.(unrestricted); open {
		return a, true
	}
	registered, ok := m.roster.Agent(a.Tenant, a.ID)
	if !ok {
		return Agent{}, false
	}
	a.Labels, _ = intersect(registered, a.Labels)
	return a, true
}

// served returns the labels a heartbeat of tenant/id may carry, and the
// claimed keys dropped; ErrNotAgent if it is no agent of its tenant.
func (m *Manager) served(hb Heartbeat) (map[string]string, []string, error) {
	if _, open := m.roster.(unrestricted); open {
		return maps.Clone(hb.Labels), nil, nil
	}
	registered, ok := m.roster.Agent(hb.Tenant, hb.Agent)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s/%s", ErrNotAgent, hb.Tenant, hb.Agent)
	}
	served, dropped := ServedLabels(registered, hb.Labels)
	return served, dropped, nil
}
