package dispatch

import (
	"context"
	"fmt"
	"maps"

	"github.com/botehq/platform/runtime/cloud"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runs"
)

// RegistryRoster is the runs.Roster of the connector registry: the
// agents of a tenant are its connectors registered with
// registry.RoleAgent and not disabled, serving their registered labels.
func RegistryRoster(keys Keys) runs.Roster { return roster{keys} }

type roster struct{ keys Keys }

func (r roster) Agent(tenant, id string) (map[string]string, bool) {
	c, err := agentRegistration(r.keys, tenant, id)
	if err != nil {
		return nil, false
	}
	return maps.Clone(c.Labels), true
}

// agentRegistration returns the registration of tenant/id if it is an
// active agent of that tenant.
func agentRegistration(keys Keys, tenant, id string) (registry.Connector, error) {
	c, ok := keys.Lookup(registry.ClientID(tenant, id))
	switch {
	case !ok:
		return registry.Connector{}, fmt.Errorf("%s/%s is not a registered connector", tenant, id)
	case c.Tenant != tenant || c.ID != id:
		return registry.Connector{}, fmt.Errorf("%s/%s is registered as %s", tenant, id, c.ClientID())
	case c.Disabled:
		return registry.Connector{}, fmt.Errorf("connector %s/%s is disabled", tenant, id)
	case !c.HasRole(registry.RoleAgent):
		return registry.Connector{}, fmt.Errorf("connector %s/%s is not registered as an agent (no role %q)", tenant, id, registry.RoleAgent)
	}
	return c, nil
}

// checkAgent refuses a message from a connector that is not an active
// agent of its tenant, before its body is read. Every refusal is logged
// at warn with one stable message and counted (RoleRefusals).
func (d *Dispatcher) checkAgent(ctx context.Context, m *cloud.Message) error {
	if _, err := agentRegistration(d.cfg.Keys, m.From.Tenant, m.From.Connector); err != nil {
		n := d.roleRefusals.Add(1)
		d.log.WarnContext(ctx, "agent message refused: sender is not a registered agent of its tenant",
			"tenant", m.From.Tenant, "connector", m.From.Connector, "message", m.ID, "reason", err.Error(), "refusals", n)
		return refuse("%v", err)
	}
	return nil
}

// RoleRefusals counts the messages refused because their sender is not a
// registered agent of its tenant, since the Dispatcher started.
func (d *Dispatcher) RoleRefusals() int64 { return d.roleRefusals.Load() }
