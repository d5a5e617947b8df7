package runs

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/tfresult"
)

// Report is an agent's account of the phase it ran.
type Report struct {
	Tenant     ids.TenantID
	Run, Agent string
	// Claim is the claim the report belongs to (Run.Claim, the agent's
	// claim token); a report of any other claim is ErrNotAssigned, even
	// from the same agent. 0: the server's own report, not checked.
	Claim int
	// State is the phase's outcome: Planned (NoChanges is derived from
	// Result.HasChanges), Applied, Failed or Cancelled.
	State  State
	Reason string
	Result *tfresult.Result
	// Plan is the saved plan and working directory, required for a plan
	// with changes.
	Plan *Artifact
	// PlanJSON is the plan's JSON (planrender.Keep) of a plan phase, if
	// the agent reported it.
	PlanJSON *Artifact
	// Policy is the server's policy check of a plan phase's plan; with a
	// failure that blocks, a workspace that auto-applies does not.
	Policy *PolicyCheck
}

// Report records the end of a phase. A plan with changes becomes Planned
// (and Approved at once when the workspace auto-applies), one without
// changes ends NoChanges; every final state releases the workspace.
func (m *Manager) Report(ctx context.Context, rep Report) (Run, error) {
	// size: one read-check-commit attempt inside retry; its locals carry state between attempts.
	switch rep.State {
	case Planned, Applied, Failed, Cancelled:
	default:
		return Run{}, fmt.Errorf("%w: an agent reports planned, applied, failed or cancelled, not %q", ErrInvalid, rep.State)
	}
	attempted := false // whether an earlier try of this call wrote
	return retry(ctx, func() (Run, error) {
		r, err := m.store.GetRun(ctx, rep.Tenant, rep.Run)
		if err != nil {
			return Run{}, fmt.Errorf("cannot record report on run %s: %w", rep.Run, err)
		}
		to := rep.State
		if to == Planned && rep.Result != nil && !rep.Result.HasChanges {
			to = NoChanges
		}
		if reported(r, rep.Agent, to) {
			if attempted { // this call's earlier write landed, its answer was lost
				m.changed(ctx, "run phase ended", r, "agent", rep.Agent, "reason", r.LastReason())
			}
			return r, nil // a redelivered report: already recorded
		}
		if rep.Claim != 0 && rep.Claim != r.Claim() {
			return Run{}, fmt.Errorf("%w: run %s is at claim %d, the report is of claim %d", ErrNotAssigned, r.ID, r.Claim(), rep.Claim)
		}
		from := r.State
		if r.SettledBy(rep.Agent) {
			from = Applying // the lost agent's result settles the run
		} else if r.Agent != rep.Agent || !r.State.Executing() {
			return Run{}, fmt.Errorf("%w: run %s is %s on agent %q, not on %q", ErrNotAssigned, r.ID, r.State, r.Agent, rep.Agent)
		}
		w, err := m.store.GetWorkspace(ctx, r.Tenant, r.Workspace)
		if err != nil {
			return Run{}, err
		}
		if to == Planned && rep.Plan == nil {
			return Run{}, fmt.Errorf("%w: a plan with changes needs its saved plan artifact", ErrInvalid)
		}
		if to == Planned {
			if err := checkArtifact("plan", rep.Plan, r.Tenant, r.Workspace); err != nil {
				return Run{}, err
			}
		}
		if rep.PlanJSON != nil {
			if err := checkArtifact("plan JSON", rep.PlanJSON, r.Tenant, r.Workspace); err != nil {
				return Run{}, err
			}
		}
		reason := reportReason(from, to, rep)
		if to == Planned && r.CancelRequested {
			// The plan finished before the agent heard of the cancel. Ending
			// it planned would leave the run waiting for an approval nobody
			// will give, holding the workspace: the cancel wins.
			to, reason = Cancelled, "the plan finished before the agent stopped"
		}
		if to == Cancelled && r.CancelReason != "" {
			reason = r.CancelReason + "; " + reason
		}
		now := m.clock()
		if err := r.move(to, now, rep.Agent, reason, w.Options); err != nil {
			return Run{}, err
		}
		if r.History[len(r.History)-1].From == Planning && rep.PlanJSON != nil && (to == Planned || to == NoChanges) {
			p := *rep.PlanJSON
			r.PlanJSON = &p
		}
		if rep.Policy != nil && r.History[len(r.History)-1].From == Planning {
			c := rep.Policy.bound()
			r.Policy = &c
		}
		if rep.Result != nil {
			res := boundResult(*rep.Result)
			if r.History[len(r.History)-1].From == Planning {
				r.PlanResult = &res
			} else {
				r.ApplyResult = &res
			}
		}
		if to == Planned {
			p := *rep.Plan
			r.Plan = &p
			switch {
			case !w.Options.AutoApply || r.DriftCheck: // a drift check only looks: applying it would write the drift into the state
			case r.Policy.Blocks():
				r.History[len(r.History)-1].Reason += "; not applied automatically: policy " + names(append(r.Policy.Failed(Mandatory), r.Policy.Failed(MandatoryOverride)...)) + " failed"
			default:
				if err := r.move(Approved, now, "auto-apply", "workspace "+string(w.Name)+" applies automatically", w.Options); err != nil {
					return Run{}, err
				}
			}
		}
		attempted = true
		if err := m.commitWithLock(ctx, r); err != nil {
			return Run{}, err
		}
		m.changed(ctx, "run phase ended", r, "agent", rep.Agent, "reason", reason)
		return r, nil
	})
}

// reported reports whether agent's report ending a phase in state to is
// already r's latest phase end (at most an auto-approval after it), so a
// report the gateway delivers twice is recorded once.
func reported(r Run, agent string, to State) bool {
	for i := len(r.History) - 1; i >= 0 && i >= len(r.History)-2; i-- {
		h := r.History[i]
		if h.From.Executing() {
			return h.By == agent && h.To == to
		}
	}
	return false
}

// reportReason is the recorded reason of a phase's end: the agent's, or
// one derived from its result.
func reportReason(from, to State, rep Report) string {
	if rep.Reason != "" {
		return rep.Reason
	}
	var changes string
	if res := rep.Result; res != nil && res.Changes != nil {
		changes = fmt.Sprintf(": %d to add, %d to change, %d to destroy", res.Changes.Add, res.Changes.Change, res.Changes.Remove)
	}
	switch to {
	case Planned:
		return "plan saved" + changes
	case NoChanges:
		return "plan has no changes"
	case Applied:
		return "apply complete" + changes
	case Cancelled:
		return "agent stopped " + string(from)
	}
	if res := rep.Result; res != nil {
		for _, d := range res.Diagnostics {
			if d.Severity == "error" {
				return string(from) + " failed: " + d.Summary
			}
		}
	}
	return string(from) + " failed"
}

// commitWithLock writes r and brings the workspace lock in line with it:
// released when r ended, no agent between phases.
func (m *Manager) commitWithLock(ctx context.Context, r Run) error {
	lock, err := m.store.GetLock(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return err
	}
	c := Commit{Tenant: r.Tenant, Workspace: r.Workspace, Runs: []Run{r}}
	if lock.Run == r.ID {
		if r.State.HoldsLock() {
			lock.Agent, lock.Deadline = r.Agent, r.Deadline
		} else {
			lock.Run, lock.Agent, lock.Since, lock.Deadline = "", "", time.Time{}, time.Time{}
		}
		c.Lock = &lock
	} else if r.State.HoldsLock() {
		// Unreachable while runs only take locks through claim; refuse
		// rather than run unlocked.
		return fmt.Errorf("run %s is %s but the workspace lock is held by %q", r.ID, r.State, lock.Run)
	}
	return m.store.Commit(ctx, c)
}

// Approve confirms a planned run so an agent applies its saved plan. by
// names the approver for people; it is also the stable id ApproveAs
// compares.
func (m *Manager) Approve(ctx context.Context, tenant ids.TenantID, runID, by string) (Run, error) {
	return m.ApproveAs(ctx, tenant, runID, by, by)
}

// ApproveAs is Approve by a principal named by (for people) with the
// stable id byID. In a workspace with FourEyes, the principal that queued
// the run cannot approve it (ErrFourEyes).
func (m *Manager) ApproveAs(ctx context.Context, tenant ids.TenantID, runID, by, byID string) (Run, error) {
	return m.ApproveRun(ctx, ApproveRequest{Tenant: tenant, Run: runID, By: by, ByID: byID})
}

// ApproveRequest asks to approve a planned run.
type ApproveRequest struct {
	Tenant ids.TenantID
	Run    string
	// By names the approver for people, ByID stably (four-eyes).
	By, ByID string
	// OverridePolicy approves despite failed policies whose enforcement
	// is MandatoryOverride (the caller checked the approver role); a
	// failed Mandatory policy is never overridden.
	OverridePolicy bool
}

// ApproveRun approves a planned run (see ApproveAs), refusing with
// ErrPolicyFailed when its plan failed a policy that blocks.
func (m *Manager) ApproveRun(ctx context.Context, req ApproveRequest) (Run, error) {
	tenant, runID, by, byID := req.Tenant, req.Run, req.By, req.ByID
	return m.change(ctx, tenant, runID, func(r *Run, w Workspace) error {
		if r.DriftCheck {
			// Applying a refresh-only check would write the drift into the
			// state: the drift would be accepted and disappear from view.
			return fmt.Errorf("%w: run %s is a drift check: it only looks and is never applied; to undo the drift, plan and apply the configuration", ErrInvalid, r.ID)
		}
		if r.State == Planned && r.Plan == nil {
			return fmt.Errorf("%w: run %s has no saved plan", ErrInvalid, r.ID)
		}
		queuedBy := cmp.Or(r.CreatedByID, r.CreatedBy)
		if w.Options.FourEyes && (byID == "" || queuedBy == "" || byID == queuedBy) {
			return fmt.Errorf("%w: workspace %s/%s needs a second person: %s queued run %s and cannot approve it", ErrFourEyes, r.Tenant, r.Workspace, by, r.ID)
		}
		if r.State != Planned {
			return r.move(Approved, m.clock(), by, "approved by "+by, w.Options) // refused as illegal
		}
		reason, err := checkPolicy(r, by, req.OverridePolicy)
		if err != nil {
			return err
		}
		return r.move(Approved, m.clock(), by, reason, w.Options)
	})
}

// Result bounds keep a run's record small enough for a table entity; the
// full log is kept in Blob storage anyway.
const (
	maxDiagnostics     = 50
	maxDiagnosticBytes = 4 << 10
	maxOutputBytes     = 16 << 10
)

func boundResult(res tfresult.Result) tfresult.Result {
	if res.Plan != nil {
		p := *res.Plan
		p.Bound(tfresult.MaxPlanSummaryEntries)
		res.Plan = &p
	}
	if len(res.Diagnostics) > maxDiagnostics {
		extra := len(res.Diagnostics) - maxDiagnostics
		res.Diagnostics = append(res.Diagnostics[:maxDiagnostics:maxDiagnostics], tfresult.Diagnostic{
			Severity: "warning", Summary: fmt.Sprintf("%d more diagnostics are in the run log", extra),
		})
	} else {
		res.Diagnostics = slices.Clone(res.Diagnostics)
	}
	for i, d := range res.Diagnostics {
		if len(d.Detail) > maxDiagnosticBytes {
			res.Diagnostics[i].Detail = d.Detail[:maxDiagnosticBytes] + "… (truncated; see the run log)"
		}
	}
	if len(res.Outputs) > 0 {
		outs := make(map[string]tfresult.Output, len(res.Outputs))
		for k, o := range res.Outputs {
			if len(o.Value) > maxOutputBytes {
				o.Value = []byte(fmt.Sprintf("%q", fmt.Sprintf("(%d bytes, too large to keep)", len(o.Value))))
			}
			outs[k] = o
		}
		res.Outputs = outs
	}
	// The agent bounds the lock file it reports; a server does not
	// trust an agent (an older or a modified one) to.
	if l := res.LockFile; l != nil && len(l.Content) > tfresult.MaxLockFileBytes {
		res.LockFile = &tfresult.LockFile{Changed: l.Changed, Created: l.Created, Truncated: true}
	}
	return res
}
