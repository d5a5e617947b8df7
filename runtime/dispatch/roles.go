package dispatch

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runs"
)

// RegistryRoster is the runs.Roster of the connector registry: the
// agents of a tenant are its connectors registered with
// registry.RoleAgent and not disabled, serving their registered labels.
func RegistryRoster(keys Keys) runs.Roster { return roster{keys} }

type roster struct{ keys Keys }

func (r roster) Agent(tenant ids.TenantID, id string) (map[string]string, bool) {
	c, err := agentRegistration(r.keys, string(tenant), id)
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

// Auditor records audit events (*audit.Recorder).
type Auditor interface {
	Record(ctx context.Context, r audit.Record)
}

// Refusals of non-agents are audited at most this often; the next record
// counts those skipped. A connector can send as fast as the gateway lets
// it; the log still has every one.
const (
	refusalAuditRate  = 1 // per second
	refusalAuditBurst = 20
)

// checkAgent refuses a message from a connector that is not an active
// agent of its tenant, before its body is applied. Every refusal is
// logged at warn with one stable message and counted (RoleRefusals); Handle
// audits it, as every refusal.
func (d *Dispatcher) checkAgent(ctx context.Context, m *botecloud.Message) error {
	_, err := agentRegistration(d.cfg.Keys, m.From.Tenant, m.From.Connector)
	if err == nil {
		return nil
	}
	n := d.roleRefusals.Add(1)
	d.log.WarnContext(ctx, "agent message refused: sender is not a registered agent of its tenant",
		"tenant", m.From.Tenant, "connector", m.From.Connector, "message", m.ID, "reason", err.Error(), "refusals", n)
	return refuse("%v", err)
}

// auditRefusal records a refused message (ErrRefused: not from an agent,
// or from an agent acting on a run or claim that is not its own) in its
// sender's tenant at a bounded rate: the message type and run it names
// (read from the body only for the record; audit.Record bounds and cleans
// what it stores).
func (d *Dispatcher) auditRefusal(ctx context.Context, m *botecloud.Message, why error) {
	if d.cfg.Audit == nil {
		return
	}
	now := d.cfg.Now()
	ok, skipped, since := d.refusalSampler.Take(now)
	if !ok {
		return
	}
	var peek struct {
		Type  string `json:"type"`
		RunID string `json:"runId"`
	}
	_ = json.Unmarshal(m.Body, &peek) // an undecodable body is refused all the same
	r := audit.Record{
		Time: now, Tenant: m.From.Tenant, Principal: "connector:" + m.From.Connector,
		Action: cmp.Or(peek.Type, "agent.message"), Object: "connector " + registry.ClientID(m.From.Tenant, m.From.Connector),
		Result: audit.ResultDenied, Detail: fmt.Sprintf("message %s: %v", m.ID, why),
	}
	if peek.RunID != "" {
		r.Object = "/v1/tenants/" + m.From.Tenant + "/runs/" + peek.RunID
	}
	if skipped > 0 {
		r.Detail += fmt.Sprintf(" (and %d more refused agent messages since %s, not recorded one by one)", skipped, since.UTC().Format(time.RFC3339))
	}
	d.cfg.Audit.Record(ctx, r)
}

// RoleRefusals counts the messages refused because their sender is not a
// registered agent of its tenant, since the Dispatcher started.
func (d *Dispatcher) RoleRefusals() int64 { return d.roleRefusals.Load() }
