package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/ids"
)

// Heartbeat is an agent saying it is alive.
type Heartbeat struct {
	Tenant   ids.TenantID
	Agent    string
	Labels   map[string]string
	Capacity int
	Version  string
	// TerraformVersion is the version of the agent's terraform.
	TerraformVersion string
	// Running lists the runs the agent is executing.
	Running []string
	// Draining: the agent is shutting down and takes no new run.
	Draining bool
	// ProviderSources: the agent applies workspaces' provider sources
	// (Agent.ProviderSources).
	ProviderSources bool
}

// Stop tells an agent to stop a run it is executing.
type Stop struct {
	Run    string `json:"run"`
	Reason string `json:"reason"`
}

// Heartbeat records that an agent is alive and answers which of its
// running runs it must stop: cancelled, timed out, failed by a sweep, or
// no longer its own. The agent must be on the Roster (ErrNotAgent
// otherwise, and nothing is recorded); it serves the labels of
// ServedLabels, never more than its registration grants.
func (m *Manager) Heartbeat(ctx context.Context, hb Heartbeat) ([]Stop, error) {
	labels, dropped, err := m.served(hb)
	if err != nil {
		return nil, err
	}
	if len(dropped) > 0 {
		m.log.WarnContext(ctx, "agent heartbeat claims labels its registration does not grant; serving only the registered ones",
			"tenant", hb.Tenant, "agent", hb.Agent, "dropped", dropped)
	}
	now := m.clock()
	a := Agent{Tenant: hb.Tenant, ID: hb.Agent, Labels: labels, Capacity: hb.Capacity, Version: hb.Version, TerraformVersion: hb.TerraformVersion, RegisteredAt: now, LastHeartbeat: now, Draining: hb.Draining, ProviderSources: hb.ProviderSources}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := m.store.GetTenant(ctx, hb.Tenant); err != nil {
		return nil, fmt.Errorf("cannot record heartbeat of %s/%s: %w", hb.Tenant, hb.Agent, err)
	}
	if old, err := m.store.GetAgent(ctx, hb.Tenant, hb.Agent); err == nil {
		a.RegisteredAt = old.RegisteredAt
		if old.Silent {
			m.log.InfoContext(ctx, "agent back", "tenant", hb.Tenant, "agent", hb.Agent, "silentSince", old.LastHeartbeat)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := m.store.PutAgent(ctx, a); err != nil {
		return nil, fmt.Errorf("cannot record heartbeat of %s/%s: %w", hb.Tenant, hb.Agent, err)
	}
	var stops []Stop
	for _, id := range hb.Running {
		r, err := m.store.GetRun(ctx, hb.Tenant, id)
		switch {
		case errors.Is(err, ErrNotFound):
			stops = append(stops, Stop{Run: id, Reason: "unknown run"})
		case err != nil:
			return nil, err
		case r.SettledBy(hb.Agent):
			// Lost mid-apply and back: let it finish, its result settles the run.
		case r.Agent != hb.Agent || !r.State.Executing():
			stops = append(stops, Stop{Run: id, Reason: fmt.Sprintf("run is %s: %s", r.State, r.LastReason())})
		case r.CancelRequested:
			stops = append(stops, Stop{Run: id, Reason: r.CancelReason})
		}
	}
	return stops, nil
}
