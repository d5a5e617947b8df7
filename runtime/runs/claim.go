package runs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// ClaimRequest asks for the next runnable run of a workspace for an agent.
type ClaimRequest struct {
	Tenant    ids.TenantID
	Workspace ids.WorkspaceID
	Agent     string
}

// Claim atomically gives an agent the next run of a workspace: the
// approved run holding the workspace (its apply), or else, when the
// workspace is free, its oldest queued run (its plan). The run's state and
// the workspace lock change in one conditional write, so of two callers
// racing for one workspace exactly one wins; the other gets
// ErrNothingToClaim.
func (m *Manager) Claim(ctx context.Context, req ClaimRequest) (Run, error) {
	agent, err := m.availableAgent(ctx, req.Tenant, req.Agent)
	if err != nil {
		return Run{}, err
	}
	return m.claim(ctx, agent, req.Workspace)
}

// ClaimNext gives an agent the next run of any workspace of its tenant that
// it may work on, trying workspaces by name. ErrNothingToClaim means there
// is none.
func (m *Manager) ClaimNext(ctx context.Context, tenant ids.TenantID, agentID string) (Run, error) {
	agent, err := m.availableAgent(ctx, tenant, agentID)
	if err != nil {
		return Run{}, err
	}
	wss, err := m.store.ListWorkspaces(ctx, tenant)
	if err != nil {
		return Run{}, fmt.Errorf("cannot list workspaces of %s: %w", tenant, err)
	}
	for _, w := range wss {
		if !w.Runs(agent) {
			continue
		}
		r, err := m.claim(ctx, agent, w.Name)
		if errors.Is(err, ErrNothingToClaim) {
			continue
		}
		return r, err
	}
	return Run{}, fmt.Errorf("%w for agent %s/%s", ErrNothingToClaim, tenant, agentID)
}

// availableAgent returns the agent if it is online and below capacity.
func (m *Manager) availableAgent(ctx context.Context, tenant ids.TenantID, id string) (Agent, error) {
	a, err := m.store.GetAgent(ctx, tenant, id)
	if err != nil {
		return Agent{}, fmt.Errorf("cannot claim for agent %s/%s: %w", tenant, id, err)
	}
	if !m.Online(a) {
		return Agent{}, fmt.Errorf("%w: agent %s/%s is silent since %s", ErrAgentUnavailable, tenant, id, a.LastHeartbeat.Format(time.RFC3339))
	}
	held, err := m.store.ListLocks(ctx, LockQuery{Tenant: tenant, Agent: id})
	if err != nil {
		return Agent{}, fmt.Errorf("cannot count runs of agent %s/%s: %w", tenant, id, err)
	}
	if a.Draining {
		return Agent{}, fmt.Errorf("%w: agent %s/%s is shutting down", ErrAgentUnavailable, tenant, id)
	}
	if len(held) >= a.Capacity {
		return Agent{}, fmt.Errorf("%w: agent %s/%s runs %d of %d", ErrAgentUnavailable, tenant, id, len(held), a.Capacity)
	}
	return a, nil
}

func (m *Manager) claim(ctx context.Context, agent Agent, workspace ids.WorkspaceID) (Run, error) {
	// size: one read-check-commit attempt inside retry; its locals carry state between attempts.
	admitted, ok := m.admit(agent)
	if !ok {
		return Run{}, fmt.Errorf("%w: %w: %s/%s", ErrAgentUnavailable, ErrNotAgent, agent.Tenant, agent.ID)
	}
	agent = admitted
	w, err := m.store.GetWorkspace(ctx, agent.Tenant, workspace)
	if err != nil {
		return Run{}, fmt.Errorf("cannot claim in workspace %s/%s: %w", agent.Tenant, workspace, err)
	}
	if !agent.Matches(w.AgentLabels) {
		return Run{}, fmt.Errorf("%w: agent %s lacks the labels %s of workspace %s", ErrAgentUnavailable, agent.ID, formatLabels(w.AgentLabels), w.Name)
	}
	if !w.TerraformAccepts(agent.TerraformVersion) {
		return Run{}, fmt.Errorf("%w: agent %s runs terraform %s, workspace %s requires %q", ErrAgentUnavailable, agent.ID, cmp.Or(agent.TerraformVersion, "of an unknown version"), w.Name, w.TerraformVersion)
	}
	if !w.SourcesApplied(agent) {
		return Run{}, fmt.Errorf("%w: agent %s is older than workspace %s's provider sources (it would ignore them)", ErrAgentUnavailable, agent.ID, w.Name)
	}
	var attempted string // the run an earlier attempt tried to claim
	return retry(ctx, func() (Run, error) {
		lock, err := m.store.GetLock(ctx, w.Tenant, w.Name)
		if err != nil {
			return Run{}, err
		}
		var r Run
		if attempted != "" && lock.Run == attempted && lock.Agent == agent.ID {
			// The earlier attempt landed although its answer was lost.
			if r, err = m.store.GetRun(ctx, w.Tenant, attempted); err == nil && r.Agent == agent.ID && r.State.Executing() {
				m.changed(ctx, "run claimed", r, "agent", agent.ID)
				return r, nil
			}
		}
		if lock.Held() {
			holder, err := m.store.GetRun(ctx, w.Tenant, lock.Run)
			switch {
			case errors.Is(err, ErrNotFound) || err == nil && !holder.State.HoldsLock():
				// Unreachable while every lock change commits with its run;
				// repair rather than block the workspace for good.
				m.log.WarnContext(ctx, "releasing a lock its run does not hold", "tenant", w.Tenant, "workspace", w.Name, "run", lock.Run, "state", holder.State)
				lock.Run, lock.Agent = "", ""
			case err != nil:
				return Run{}, err
			case lock.Agent != "":
				return Run{}, fmt.Errorf("%w: workspace %s is busy with run %s on agent %s", ErrNothingToClaim, w.Name, lock.Run, lock.Agent)
			case holder.State != Approved:
				return Run{}, fmt.Errorf("%w: workspace %s waits for run %s (%s)", ErrNothingToClaim, w.Name, holder.ID, holder.State)
			default:
				r = holder
			}
		}
		if !lock.Held() {
			queued, err := m.store.ListRuns(ctx, w.Tenant, w.Name, RunQuery{States: []State{Queued}, From: queueFloor(lock.Started)})
			if err != nil {
				return Run{}, err
			}
			if len(queued) == 0 {
				return Run{}, fmt.Errorf("%w: workspace %s has no queued run", ErrNothingToClaim, w.Name)
			}
			r = queued[0]
		}
		to := Planning
		if r.State == Approved {
			to = Applying
		}
		now := m.clock()
		if err := r.move(to, now, agent.ID, "claimed by agent "+agent.ID, w.Options); err != nil {
			return Run{}, err
		}
		r.Agent = agent.ID
		if to == Planning {
			r.PlanAgent = agent.ID
		} else {
			r.ApplyAgent = agent.ID
		}
		if !lock.Held() {
			lock.Since = now
		}
		if to == Planning && r.ID > lock.Started {
			lock.Started = r.ID
		}
		lock.Tenant, lock.Workspace, lock.Run, lock.Agent, lock.Deadline = w.Tenant, w.Name, r.ID, agent.ID, r.Deadline
		attempted = r.ID
		if err := m.store.Commit(ctx, Commit{Tenant: w.Tenant, Workspace: w.Name, Runs: []Run{r}, Lock: &lock}); err != nil {
			return Run{}, err
		}
		m.changed(ctx, "run claimed", r, "agent", agent.ID)
		return r, nil
	})
}
