package dispatch

import (
	"context"
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
)

// Runs that survive a lost agent (see runs.GiveBack): an agent starts an
// apply only after the server recorded the start (run.started, answered by
// run.proceed; a plan reports its start without waiting), so a claim whose
// agent refused it or was lost before that goes back to the queue for
// another agent; messages of a claim that is no longer open, which an
// agent restarted from its queue sends, are dropped quietly.

// Handle is the botecloud.Handler for what agents send. A message of the
// sender's own claim that is no longer open (given back, swept, ended) is
// logged and dropped: it is not an error, and goes to no error queue.
func (d *Dispatcher) Handle(ctx context.Context, m *botecloud.Message) error {
	err := d.handle(ctx, m)
	if errors.Is(err, ErrRefused) {
		d.auditRefusal(ctx, m, err)
	}
	var s *staleError
	if errors.As(err, &s) {
		d.staleDropped.Add(1)
		d.log.InfoContext(ctx, "dropping a message of a claim that is no longer open", "tenant", m.From.Tenant, "agent", m.From.Connector, "id", m.ID, "reason", s.msg)
		return nil
	}
	return err
}

// StaleDropped counts the agents' messages dropped because their claim is
// no longer open.
func (d *Dispatcher) StaleDropped() int64 { return d.staleDropped.Load() }

// staleError is a message of a claim that is no longer open.
type staleError struct{ msg string }

func (e *staleError) Error() string { return "stale claim: " + e.msg }

func stale(format string, args ...any) error {
	return &staleError{msg: fmt.Sprintf(format, args...)}
}

// started records that an agent starts Terraform for its claim and lets
// it proceed (an apply waits for that). A claim that is no longer open
// gets run.cancel instead: an apply never starts, a plan stops.
func (d *Dispatcher) started(ctx context.Context, tenant ids.TenantID, agent string, s *runproto.Started) error {
	r, err := d.checkClaim(ctx, tenant, agent, s.RunID, s.ClaimToken, false)
	if err == nil {
		n, _ := runproto.ParseClaimToken(s.ClaimToken)
		r, err = d.m.Start(ctx, runs.StartRequest{Tenant: tenant, Run: s.RunID, Agent: agent, Claim: n})
		if errors.Is(err, runs.ErrNotAssigned) {
			err = stale("%v", err)
		}
	}
	var st *staleError
	if errors.As(err, &st) {
		d.send(ctx, tenant, agent, &runproto.Cancel{RunID: s.RunID, ClaimToken: s.ClaimToken, Reason: "the claim is no longer open: " + st.msg})
		return err
	}
	if err != nil {
		return err
	}
	if err := d.sendNow(ctx, tenant, agent, &runproto.Proceed{RunID: r.ID, ClaimToken: s.ClaimToken}); err != nil {
		return err // the bus brings run.started back; the agent repeats it too
	}
	d.log.InfoContext(ctx, "terraform started", "tenant", tenant, "run", r.ID, "agent", agent, "phase", s.Phase, "pickup", d.cfg.Now().Sub(claimedAt(r)))
	d.notify(r.ID)
	return nil
}

// refused gives back a claim its agent did not start.
func (d *Dispatcher) refused(ctx context.Context, r runs.Run, agent string, res *runproto.Result) error {
	n, _ := runproto.ParseClaimToken(res.ClaimToken)
	_, err := d.m.GiveBack(ctx, runs.GiveBackRequest{Tenant: r.Tenant, Run: r.ID, Agent: agent, Claim: n, Reason: res.Reason, Draining: res.Draining})
	switch {
	case errors.Is(err, runs.ErrNotAssigned):
		return stale("refusal of run %s by %s/%s: %v", r.ID, r.Tenant, agent, err)
	case errors.Is(err, runs.ErrInvalid), errors.Is(err, runs.ErrIllegalTransition):
		return refuse("refusal of run %s by %s/%s: %v", r.ID, r.Tenant, agent, err)
	case err != nil:
		return err
	}
	d.log.InfoContext(ctx, "agent gave a run back", "tenant", r.Tenant, "run", r.ID, "agent", agent, "reason", res.Reason, "draining", res.Draining)
	d.finishCursor(r.ID, res.ClaimToken, res.LastSeq)
	return nil
}
