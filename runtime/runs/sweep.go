package runs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SweepSilentAgents settles the runs of agents that stopped heartbeating
// (loseClaim: back to the queue, or NeedsAttention for an apply whose
// Terraform started) and marks the agents silent. It returns the agents
// it marked. Any number of replicas may sweep at once.
func (m *Manager) SweepSilentAgents(ctx context.Context) ([]Agent, error) {
	now := m.clock()
	agents, err := m.store.ListSilentAgents(ctx, now.Add(-m.silent))
	if err != nil {
		return nil, fmt.Errorf("cannot list silent agents: %w", err)
	}
	var marked []Agent
	for _, a := range agents {
		// The list may be stale by now: skip an agent that just heartbeated.
		fresh, err := m.store.GetAgent(ctx, a.Tenant, a.ID)
		if err != nil || fresh.Silent || !fresh.LastHeartbeat.Equal(a.LastHeartbeat) {
			continue
		}
		a = fresh
		locks, err := m.store.ListLocks(ctx, LockQuery{Tenant: a.Tenant, Agent: a.ID})
		if err != nil {
			return marked, err
		}
		for _, l := range locks {
			if err := m.loseClaim(ctx, a.Tenant, l.Run, a.ID, a.LastHeartbeat); err != nil {
				return marked, err
			}
		}
		a.Silent = true
		switch err := m.store.PutAgent(ctx, a); {
		case errors.Is(err, ErrConflict):
			continue // it heartbeated meanwhile
		case err != nil:
			return marked, fmt.Errorf("cannot mark agent %s/%s silent: %w", a.Tenant, a.ID, err)
		}
		m.log.WarnContext(ctx, "agent silent", "tenant", a.Tenant, "agent", a.ID, "lastHeartbeat", a.LastHeartbeat, "runsFailed", len(locks))
		marked = append(marked, a)
	}
	return marked, nil
}

var errSkip = errors.New("skip")

// SweepTimeouts ends runs whose current state outlived its deadline
// (planning, applying, or a plan waiting for approval) as TimedOut and
// releases their workspaces. An agent still executing one learns it from
// its next heartbeat.
func (m *Manager) SweepTimeouts(ctx context.Context) ([]Run, error) {
	now := m.clock()
	locks, err := m.store.ListLocks(ctx, LockQuery{ExpiredBy: now})
	if err != nil {
		return nil, fmt.Errorf("cannot list expired locks: %w", err)
	}
	var ended []Run
	for _, l := range locks {
		r, err := m.change(ctx, l.Tenant, l.Run, func(r *Run, w Workspace) error {
			if r.Deadline.IsZero() || r.Deadline.After(now) {
				return errSkip
			}
			return r.move(TimedOut, now, "sweeper", fmt.Sprintf("%s passed its deadline %s", r.State, r.Deadline.Format(time.RFC3339)), w.Options)
		})
		switch {
		case errors.Is(err, errSkip), errors.Is(err, ErrIllegalTransition):
			continue
		case err != nil:
			return ended, err
		}
		m.log.WarnContext(ctx, "run timed out", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID)
		ended = append(ended, r)
	}
	return ended, nil
}

// Sweep runs both sweeps every interval until ctx ends.
func (m *Manager) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := m.SweepSilentAgents(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "cannot sweep silent agents", "err", err)
		}
		if _, err := m.SweepTimeouts(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "cannot sweep run timeouts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
