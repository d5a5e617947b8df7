package runs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// What happens to a claim whose agent cannot go on with it.
//
// An agent starts an apply only once the server recorded that it may
// (Start, the start fence: run.started, answered by run.proceed). So the
// server knows for every apply claim whether Terraform may have started
// (a plan reports its start without waiting):
//
//   - An agent that refuses an assignment (at its concurrency limit,
//     shutting down) gives the claim back (GiveBack): the plan goes back to
//     the queue, the apply of the saved plan back to approved, for any
//     agent of the tenant.
//   - A lost agent (silent for Config.SilentAfter; loseClaim): a plan goes
//     back to the queue whether or not Terraform started (a plan changes no
//     infrastructure); an apply goes back to approved if Terraform was not
//     let start, and otherwise NeedsAttention with what is known.
//
// A phase is given back at most MaxGiveBacks times; after that the run
// fails with the reason, so a run that kills every agent that takes it
// does not go round forever.

// MaxGiveBacks bounds how often a run's claims go back to the queue.
const MaxGiveBacks = 5

// StartRequest is an agent asking to start Terraform for its claim.
type StartRequest struct {
	Tenant     ids.TenantID
	Run, Agent string
	// Claim is the claim generation the agent holds (Run.Claim).
	Claim int
}

// Start records that the agent of the run's current claim starts
// Terraform now, and returns the run. It is idempotent for one claim. A
// claim that is not the run's current one on that agent (given back,
// cancelled, swept, or another agent's) gets ErrNotAssigned: the agent
// must not start Terraform.
func (m *Manager) Start(ctx context.Context, req StartRequest) (Run, error) {
	return retry(ctx, func() (Run, error) {
		r, err := m.store.GetRun(ctx, req.Tenant, req.Run)
		if err != nil {
			return Run{}, fmt.Errorf("cannot start run %s: %w", req.Run, err)
		}
		if err := holds(r, req.Agent, req.Claim); err != nil {
			return Run{}, err
		}
		if r.TerraformStarted != nil {
			return r, nil // a redelivered or repeated request
		}
		now := m.clock()
		r.TerraformStarted = &now
		if err := m.store.Commit(ctx, Commit{Tenant: r.Tenant, Workspace: r.Workspace, Runs: []Run{r}}); err != nil {
			return Run{}, err
		}
		m.log.InfoContext(ctx, "terraform started", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "agent", req.Agent, "claim", req.Claim, "state", r.State)
		m.notify(r)
		return r, nil
	})
}

// holds checks that agent executes r on claim.
func holds(r Run, agent string, claim int) error {
	if !r.State.Executing() || r.Agent != agent || r.Claim() != claim {
		return fmt.Errorf("%w: claim %d of run %s is not open on agent %q (the run is %s, claim %d on %q)", ErrNotAssigned, claim, r.ID, agent, r.State, r.Claim(), r.Agent)
	}
	return nil
}

// GiveBackRequest is an agent giving back a claim it did not start.
type GiveBackRequest struct {
	Tenant     ids.TenantID
	Run, Agent string
	Claim      int
	// Reason is the agent's ("at its concurrency limit", ...).
	Reason string
	// Draining: the agent refused because it is shutting down; it is
	// given no further run until it heartbeats without draining.
	Draining bool
}

// GiveBack returns a claim its agent refused to the queue (a plan) or to
// approved (an apply of the saved plan), so another agent of the tenant
// takes it. A claim whose Terraform was let start cannot be given back
// (ErrInvalid); one that is no longer open on the agent gets
// ErrNotAssigned.
func (m *Manager) GiveBack(ctx context.Context, req GiveBackRequest) (Run, error) {
	if req.Draining {
		if err := m.markDraining(ctx, req.Tenant, req.Agent); err != nil {
			return Run{}, err
		}
	}
	return m.change(ctx, req.Tenant, req.Run, func(r *Run, w Workspace) error {
		if err := holds(*r, req.Agent, req.Claim); err != nil {
			return err
		}
		if r.TerraformStarted != nil {
			return fmt.Errorf("%w: agent %s gives back claim %d of run %s, but Terraform was let start at %s", ErrInvalid, req.Agent, req.Claim, r.ID, r.TerraformStarted.Format(time.RFC3339))
		}
		return m.giveBack(r, w, "agent "+req.Agent+" gave the run back: "+req.Reason)
	})
}

// giveBack moves an executing run back to where an agent picks it up, or
// fails it once it went back MaxGiveBacks times.
func (m *Manager) giveBack(r *Run, w Workspace, reason string) error {
	to := Queued
	if r.State == Applying {
		to = Approved
	}
	if n := givenBack(*r); n >= MaxGiveBacks {
		return r.move(Failed, m.clock(), "sweeper", fmt.Sprintf("%s; the run went back to the queue %d times already", reason, n), w.Options)
	}
	return r.move(to, m.clock(), "sweeper", reason, w.Options)
}

// givenBack counts the claims of r that went back to the queue.
func givenBack(r Run) int {
	n := 0
	for _, h := range r.History {
		if h.From.Executing() && h.To.Runnable() {
			n++
		}
	}
	return n
}

func (m *Manager) markDraining(ctx context.Context, tenant ids.TenantID, id string) error {
	_, err := retry(ctx, func() (struct{}, error) {
		a, err := m.store.GetAgent(ctx, tenant, id)
		if err != nil || a.Draining {
			return struct{}{}, err
		}
		a.Draining = true
		return struct{}{}, m.store.PutAgent(ctx, a)
	})
	if err != nil {
		return fmt.Errorf("cannot mark agent %s/%s draining: %w", tenant, id, err)
	}
	return nil
}

// loseClaim settles a run executing on an agent that stopped
// heartbeating (last seen at lastSeen): back to the queue, or
// NeedsAttention for an apply whose Terraform was let start.
func (m *Manager) loseClaim(ctx context.Context, tenant ids.TenantID, runID, agent string, lastSeen time.Time) error {
	lost := fmt.Sprintf("agent %s stopped heartbeating (last seen %s)", agent, lastSeen.Format(time.RFC3339))
	_, err := m.change(ctx, tenant, runID, func(r *Run, w Workspace) error {
		if r.Agent != agent || !r.State.Executing() {
			return errSkip
		}
		switch {
		case r.State == Planning && r.TerraformStarted == nil:
			// A plan does not wait for the server to record its start.
			return m.giveBack(r, w, lost+" before Terraform started, as far as the server knows; a plan changes nothing, so the run goes to another agent")
		case r.TerraformStarted == nil:
			return m.giveBack(r, w, lost+" before Terraform started; the run goes to another agent")
		case r.State == Planning:
			return m.giveBack(r, w, fmt.Sprintf("%s while Terraform was planning (started %s); a plan changes nothing, so the run is planned again",
				lost, r.TerraformStarted.Format(time.RFC3339)))
		}
		return r.move(NeedsAttention, m.clock(), "sweeper", fmt.Sprintf(
			"%s while Terraform was applying (started %s): the apply may have changed resources and written part of the state, "+
				"and the state it left was not received. Check the infrastructure and the workspace state, then cancel the run to free the workspace; "+
				"should the agent come back, its result settles the run", lost, r.TerraformStarted.Format(time.RFC3339)), w.Options)
	})
	if errors.Is(err, errSkip) || errors.Is(err, ErrIllegalTransition) {
		return nil // changed meanwhile
	}
	return err
}

// SettledBy reports whether agent's result still settles r although no
// agent executes it: r needs attention and agent is the one that was lost
// applying it. Its heartbeats do not stop it, and its claim stays open for
// its result (and the uploads that come with it).
func (r *Run) SettledBy(agent string) bool {
	return r.State == NeedsAttention && r.ApplyAgent == agent
}
