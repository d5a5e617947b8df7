package opsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runs"
)

// AgentsFileVersion is the format version of the agents seed file.
const AgentsFileVersion = 1

// AgentsFile is a seed list of agents, for a server that has no state store
// yet (local runs, tests):
//
//	{"version": 1, "agents": [
//	  {"tenant": "contoso", "name": "agent-01", "state": "online",
//	   "version": "0.1.0", "labels": {"env": "prod"}}]}
//
// id may be omitted; it is always "tenant/name".
type AgentsFile struct {
	Version int     `json:"version"`
	Agents  []Agent `json:"agents"`
}

var agentStates = []string{AgentOnline, AgentOffline, AgentUnknown, AgentDisabled}

// Validate reports the first invalid field.
func (f AgentsFile) Validate() error {
	if f.Version != AgentsFileVersion {
		return fmt.Errorf("version is %d, want %d", f.Version, AgentsFileVersion)
	}
	seen := map[string]bool{}
	for i, a := range f.Agents {
		if err := ids.Validate("tenant", a.Tenant); err != nil {
			return fmt.Errorf("agents[%d].tenant: %w", i, err)
		}
		if err := ids.Validate("connector", a.Name); err != nil {
			return fmt.Errorf("agents[%d].name: %w", i, err)
		}
		id := registry.ClientID(a.Tenant, a.Name)
		if a.ID != "" && a.ID != id {
			return fmt.Errorf("agents[%d].id: %q does not match tenant and name (%q)", i, a.ID, id)
		}
		if seen[id] {
			return fmt.Errorf("agents[%d]: duplicate agent %q", i, id)
		}
		seen[id] = true
		if !slices.Contains(agentStates, a.State) {
			return fmt.Errorf("agents[%d].state: %q is not one of %v", i, a.State, agentStates)
		}
	}
	return nil
}

// LoadAgentsFile reads and validates an agents seed file.
func LoadAgentsFile(path string) ([]Agent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read agents file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f AgentsFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot decode agents file %s: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("invalid agents file %s: %w", path, err)
	}
	for i := range f.Agents {
		f.Agents[i].ID = registry.ClientID(f.Agents[i].Tenant, f.Agents[i].Name)
	}
	return f.Agents, nil
}

// AgentsFromRegistry lists the connectors registered as agents
// (registry.RoleAgent) with their registered labels, in state unknown (or
// disabled) until they report in. Other connectors are no agents.
func AgentsFromRegistry(reg *registry.Registry) []Agent {
	var out []Agent
	for _, c := range reg.Connectors() {
		if !c.HasRole(registry.RoleAgent) {
			continue
		}
		state := AgentUnknown
		if c.Disabled {
			state = AgentDisabled
		}
		out = append(out, Agent{ID: c.ClientID(), Tenant: c.Tenant, Name: c.ID, State: state, Labels: maps.Clone(c.Labels)})
	}
	return out
}

// RegistryAgents is an AgentStore of the registry's agents
// (AgentsFromRegistry), read from the registry in force at each call
// (registry.Watcher.Current), for a server without runs.
type RegistryAgents func() *registry.Registry

// ListAgents implements AgentStore.
func (ra RegistryAgents) ListAgents(ctx context.Context, f AgentFilter) ([]Agent, error) {
	return NewStaticAgents(AgentsFromRegistry(ra())).ListAgents(ctx, f)
}

// StaticAgents is an AgentStore over a fixed list.
type StaticAgents struct {
	agents []Agent
}

// NewStaticAgents returns a store holding a copy of agents, sorted by id.
func NewStaticAgents(agents []Agent) *StaticAgents {
	s := &StaticAgents{agents: slices.Clone(agents)}
	sort.Slice(s.agents, func(i, j int) bool { return s.agents[i].ID < s.agents[j].ID })
	return s
}

// ListAgents implements AgentStore. Callers get their own copy.
func (s *StaticAgents) ListAgents(ctx context.Context, f AgentFilter) ([]Agent, error) {
	out := make([]Agent, 0, len(s.agents))
	for _, a := range s.agents {
		if f.Tenant != "" && a.Tenant != string(f.Tenant) {
			continue
		}
		a.Labels = maps.Clone(a.Labels)
		out = append(out, a)
	}
	return out, nil
}

// RunAgents lists agents as the run store knows them (heartbeats: state,
// last seen, capacity, labels served, version; workspace locks: running
// runs), plus the registered agents that never heartbeated (state
// unknown). An agent the registry disables, or no longer names as an
// agent, is listed disabled: it gets no run.
type RunAgents struct {
	Runs *runs.Manager
	// Tenants lists every tenant (runs.Store.ListTenants).
	Tenants func(ctx context.Context) ([]runs.Tenant, error)
	// Registry, if set, returns the registry in force; its agents that
	// never heartbeated are listed too.
	Registry func() *registry.Registry
}

// ListAgents implements AgentStore.
func (ra RunAgents) ListAgents(ctx context.Context, f AgentFilter) ([]Agent, error) {
	var tenants []ids.TenantID
	if f.Tenant != "" {
		tenants = []ids.TenantID{f.Tenant}
	} else {
		ts, err := ra.Tenants(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			tenants = append(tenants, t.ID)
		}
	}
	byID := map[string]Agent{}
	for _, tenant := range tenants {
		agents, err := ra.Runs.ListAgents(ctx, tenant)
		if err != nil {
			return nil, err
		}
		running := map[string][]string{}
		if len(agents) > 0 {
			locks, err := ra.Runs.ListLocks(ctx, tenant)
			if err != nil {
				return nil, err
			}
			for _, l := range locks {
				if l.Agent != "" {
					running[l.Agent] = append(running[l.Agent], l.Run)
				}
			}
		}
		for _, a := range agents {
			seen := a.LastHeartbeat.UTC()
			state := AgentOffline
			if ra.Runs.Online(a) {
				state = AgentOnline
			}
			id := registry.ClientID(string(a.Tenant), a.ID)
			byID[id] = Agent{ID: id, Tenant: string(a.Tenant), Name: a.ID, State: state, Version: a.Version, TerraformVersion: a.TerraformVersion, LastSeen: &seen,
				Labels: maps.Clone(a.Labels), Capacity: a.Capacity, Running: running[a.ID]}
		}
	}
	if ra.Registry != nil {
		registered := map[string]bool{}
		for _, a := range AgentsFromRegistry(ra.Registry()) {
			if f.Tenant != "" && a.Tenant != string(f.Tenant) {
				continue
			}
			registered[a.ID] = true
			known, ok := byID[a.ID]
			switch {
			case !ok:
				byID[a.ID] = a
			case a.State == AgentDisabled:
				known.State = AgentDisabled
				byID[a.ID] = known
			}
		}
		for id, a := range byID {
			if !registered[id] {
				a.State = AgentDisabled
				byID[id] = a
			}
		}
	}
	out := make([]Agent, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
