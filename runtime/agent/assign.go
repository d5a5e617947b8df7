package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/runproto"
)

func phaseKey(id, token string) string { return id + "/" + token }

// assign starts a phase, waiting up to QueueWait for a slot. It returns
// once the phase runs (or was refused), not when it ends: a long handler
// would hold one of the connector's handler slots, which run.cancel
// messages need.
func (a *Agent) assign(ctx context.Context, asg *runproto.Assign) error {
	// size: the checks, slot wait and start of one phase, in order; they share the run's log and key.
	log := a.log.With("run", asg.RunID, "claim", asg.ClaimToken, "op", asg.Op, "workspace", asg.Workspace)
	key := phaseKey(asg.RunID, asg.ClaimToken)
	if asg.Tenant != a.cfg.Tenant {
		// The gateway only delivers this tenant's messages here; a body
		// naming another tenant is a server bug, never something to run.
		a.notRun(ctx, log, asg, runproto.Failed, ReasonRefused+"assignment names tenant "+asg.Tenant+", this agent belongs to "+a.cfg.Tenant)
		return nil
	}

	a.mu.Lock()
	if r, ok := a.active[asg.RunID]; (ok && r.token == asg.ClaimToken) || a.waiting[key] != nil || a.done.Has(key) {
		a.mu.Unlock()
		log.InfoContext(ctx, "ignoring a redelivered assignment")
		return nil
	}
	if reason, ok := a.cancelled[key]; ok {
		delete(a.cancelled, key)
		a.mu.Unlock()
		a.notRun(ctx, log, asg, runproto.Cancelled, reason)
		return nil
	}
	if prev, ok := a.active[asg.RunID]; ok {
		if !newerClaim(asg.ClaimToken, prev.token) {
			// An older claim read late (from the queue, after a restart):
			// the server no longer has it open.
			a.mu.Unlock()
			log.InfoContext(ctx, "ignoring an older claim of a run this agent executes", "running", prev.token)
			return nil
		}
		// A newer claim of the same run: the old one is stale, and must
		// give its slot back.
		prev.cancel(fmt.Errorf("superseded by claim %s", asg.ClaimToken))
	}
	if a.draining {
		a.mu.Unlock()
		a.notRun(ctx, log, asg, runproto.Refused, ReasonRefused+"agent "+a.cfg.ID+" is shutting down")
		return nil
	}
	w := &waiter{cancelled: make(chan struct{})}
	a.waiting[key] = w
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiting, key)
		a.mu.Unlock()
	}()

	select {
	case a.slots <- struct{}{}:
	default:
		log.InfoContext(ctx, "at the concurrency limit; waiting for a slot", "concurrency", a.cfg.Concurrency)
		t := time.NewTimer(a.cfg.QueueWait)
		defer t.Stop()
		select {
		case a.slots <- struct{}{}:
		case <-t.C:
			a.notRun(ctx, log, asg, runproto.Refused, fmt.Sprintf("%sagent %s is at its concurrency limit (%d running) after waiting %s", ReasonRefused, a.cfg.ID, a.cfg.Concurrency, a.cfg.QueueWait))
			return nil
		case <-a.drainCh:
			a.notRun(ctx, log, asg, runproto.Refused, ReasonRefused+"agent "+a.cfg.ID+" is shutting down")
			return nil
		case <-w.cancelled:
			a.notRun(ctx, log, asg, runproto.Cancelled, w.reason)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("cannot start run %s: %w", asg.RunID, ctx.Err())
		}
	}

	a.mu.Lock()
	switch {
	case a.draining: // drain started while we waited for the slot
		a.mu.Unlock()
		<-a.slots
		a.notRun(ctx, log, asg, runproto.Refused, ReasonRefused+"agent "+a.cfg.ID+" is shutting down")
		return nil
	case w.closed:
		a.mu.Unlock()
		<-a.slots
		a.notRun(ctx, log, asg, runproto.Cancelled, w.reason)
		return nil
	}
	runCtx, cancel := context.WithCancelCause(a.runs)
	a.active[asg.RunID] = &activeRun{id: asg.RunID, token: asg.ClaimToken, cancel: cancel}
	a.wg.Add(1)
	a.mu.Unlock()

	log.InfoContext(ctx, "run assigned")
	go func() {
		defer a.wg.Done()
		res := a.execute(runCtx, asg, log)
		cancel(nil)
		a.mu.Lock()
		if r := a.active[asg.RunID]; r != nil && r.token == asg.ClaimToken {
			delete(a.active, asg.RunID)
		}
		a.done.Add(key)
		a.mu.Unlock()
		<-a.slots
		// The slot is free before the result goes out: the server may
		// assign the next run the moment it reads the result.
		a.sendResult(res)
	}()
	return nil
}

// waiter is an assignment waiting for a slot; a cancel closes cancelled.
type waiter struct {
	cancelled chan struct{}
	closed    bool // guarded by Agent.mu
	reason    string
}

// notRun reports an assignment the agent did not run: refused (failed)
// or cancelled before it started.
func (a *Agent) notRun(ctx context.Context, log *slog.Logger, asg *runproto.Assign, outcome runproto.Outcome, reason string) {
	log.WarnContext(ctx, "assignment not run", "outcome", outcome, "reason", reason)
	a.mu.Lock()
	a.done.Add(phaseKey(asg.RunID, asg.ClaimToken))
	a.mu.Unlock()
	a.sendResult(&runproto.Result{RunID: asg.RunID, ClaimToken: asg.ClaimToken, Phase: runproto.PhaseOf(asg.Op), Outcome: outcome, Reason: reason, LastSeq: -1,
		Draining: outcome == runproto.Refused && a.isDraining()})
}

// errCancelled is the cause of a run cancelled by the server.
type errCancelled struct{ reason string }

func (e *errCancelled) Error() string { return "cancelled: " + e.reason }

// cancel stops a run in flight or waiting for a slot; a cancel for an
// assignment not seen yet is remembered, so the assignment is reported
// cancelled when it comes.
func (a *Agent) cancel(ctx context.Context, c *runproto.Cancel) {
	reason := c.Reason
	if reason == "" {
		reason = "cancelled by the server"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.active[c.RunID]; ok {
		if c.ClaimToken != "" && c.ClaimToken != r.token {
			a.log.InfoContext(ctx, "ignoring a cancel for another claim of a running run", "run", c.RunID, "claim", c.ClaimToken, "running", r.token)
			return
		}
		a.log.InfoContext(ctx, "cancelling run", "run", c.RunID, "claim", r.token, "reason", reason)
		r.cancel(&errCancelled{reason: reason})
		return
	}
	found := false
	for key, w := range a.waiting {
		id, token, _ := strings.Cut(key, "/")
		if id == c.RunID && (c.ClaimToken == "" || c.ClaimToken == token) && !w.closed {
			a.log.InfoContext(ctx, "cancelling an assignment waiting for a slot", "run", id, "claim", token, "reason", reason)
			w.closed, w.reason = true, reason
			close(w.cancelled)
			found = true
		}
	}
	switch {
	case found:
	case c.ClaimToken != "" && !a.done.Has(phaseKey(c.RunID, c.ClaimToken)):
		if len(a.cancelled) >= 10_000 {
			clear(a.cancelled)
		}
		a.cancelled[phaseKey(c.RunID, c.ClaimToken)] = reason
		a.log.InfoContext(ctx, "cancel for a run not started here; remembering it", "run", c.RunID, "claim", c.ClaimToken)
	default:
		a.log.DebugContext(ctx, "cancel for a run not running here", "run", c.RunID)
	}
}
