package notify

import (
	"context"
	"fmt"
	"strings"

	"github.com/botehq/platform/runtime/runs"
)

// RunEvents are the events transition t (the i-th of r's history) makes:
// a plan that waits for approval, a failed policy check, an applied,
// failed or cancelled run.
func RunEvents(r runs.Run, t runs.Transition, i int) []Event {
	info := &RunInfo{ID: r.ID, Operation: string(r.Operation), State: string(t.To), CreatedBy: r.CreatedBy, Reason: t.Reason}
	if res := r.PlanResult; res != nil && res.Changes != nil {
		info.Add, info.Change, info.Destroy = res.Changes.Add, res.Changes.Change, res.Changes.Remove
	}
	ev := func(typ EventType, msg string) Event {
		return Event{ID: fmt.Sprintf("%s-%d-%s", r.ID, i, strings.ReplaceAll(string(typ), ".", "_")), Type: typ, Time: t.At.UTC(),
			Tenant: r.Tenant, Workspace: r.Workspace, Run: info, Message: msg}
	}
	if r.DriftCheck && t.To != runs.Failed && t.To != runs.TimedOut {
		return nil // a drift check notifies workspace.drift_detected itself (package drift)
	}
	var out []Event
	if t.From == runs.Planning && (t.To == runs.Planned || t.To == runs.NoChanges) && r.Policy != nil {
		var failed []PolicyInfo
		for _, p := range r.Policy.Results {
			if !p.Passed {
				// At most five messages each: the event stays small (the run has them all).
				failed = append(failed, PolicyInfo{Policy: p.Policy, Version: p.Version, Enforcement: string(p.Enforcement), Messages: p.Messages[:min(len(p.Messages), 5)]})
			}
		}
		if len(failed) > 0 {
			e := ev(PolicyFailed, fmt.Sprintf("the plan of run %s in workspace %s failed %d of its policies", r.ID, r.Workspace, len(failed)))
			e.Policy = failed
			out = append(out, e)
		}
	}
	switch {
	case t.To == runs.Planned && r.State == runs.Planned:
		out = append(out, ev(NeedsApproval, fmt.Sprintf("run %s in workspace %s needs approval: %s", r.ID, r.Workspace, t.Reason)))
	case t.To == runs.Applied:
		out = append(out, ev(Applied, fmt.Sprintf("run %s applied in workspace %s: %s", r.ID, r.Workspace, t.Reason)))
	case t.To == runs.Failed || t.To == runs.TimedOut:
		out = append(out, ev(Failed, fmt.Sprintf("run %s in workspace %s %s: %s", r.ID, r.Workspace, t.To, t.Reason)))
	case t.To == runs.Cancelled:
		out = append(out, ev(Cancelled, fmt.Sprintf("run %s in workspace %s was cancelled: %s", r.ID, r.Workspace, t.Reason)))
	}
	return out
}

// RunTransition enqueues the events of a transition the run manager
// stored (runs.Config.OnTransition): it runs in the goroutine that made
// the change, right after the write.
func (n *Notifier) RunTransition(ctx context.Context, r runs.Run, t runs.Transition) {
	i := len(r.History) - 1
	for i >= 0 && !(r.History[i].At.Equal(t.At) && r.History[i].To == t.To) {
		i--
	}
	for _, ev := range RunEvents(r, t, i) {
		var err error
		for attempt := range 3 {
			if err = n.Notify(ctx, ev); err == nil || ctx.Err() != nil {
				break
			}
			_ = retryWait(ctx, attempt)
		}
		if err != nil {
			n.cfg.Logger.ErrorContext(ctx, "notification lost: cannot enqueue it", "tenant", r.Tenant, "run", r.ID, "event", ev.Type, "err", err)
		}
	}
}
